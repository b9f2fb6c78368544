#!/usr/bin/env python3
"""QEMU test of `opie storage` over the real tools (issue 6 "External tools").

    tests/qemu/storage_tools.py [--image build/qemu] [--logs DIR]

ONE ISU-role VM (1 vCPU) with four 32 MiB data disks, booted four times
on the same disks (opie_cluster's kill/stop + restart). No fake anywhere:
opie_sys::host::RealHost runs the image's mdadm 4.4, lvm2, mkfs.ext4 and
mount on Debian trixie's kernel 6.12.

Boot 1: a foreign array (another cluster's RAID1) is made on vde by hand;
  `opie storage create-group` over vdb vdc vde refuses naming vde and
  leaves vdb and vdc untouched; over vdb vdc vdd it starts in the
  background and the VM is killed (power cut) once step 3 (vgcreate) began.
Boot 2: create-group again resumes: assembles the array it made (never a
  second create) and finishes: RAID5 (internal bitmap, lab:g1) + VG
  opie_g1 + LV data with 15 % of the extents free + 64-bit journaled ext4
  labelled g1 at /srv/g1 with acl,user_xattr; a third run changes nothing;
  4 MiB are written and their sha256 kept; power cut (nothing unmounted).
Boot 3: `opie storage assemble` assembles, activates and mounts (journal
  replay); the sha256 matches; `opie storage status` names the group;
  a second assemble changes nothing; through `opie storage`: an NFS
  export added, listed (exportfs -v parsed) and removed, a missing
  directory refused, a failing exportfs reported with its stderr, an SMB user added and its password changed
  (ksmbd.adduser, ksmbd.control -r; checked by mount.cifs), resize2fs
  growing the mounted ext4 after lvextend; clean stop.
Boot 4: vdd is hot-removed (PCI remove: an ISU that is gone); assembling
  from vdb alone is refused (1 of 3: never fewer than all but one); an
  inactive md0 holding members (array_state set by hand) is released;
  from vdb vdc vdd it comes up degraded [3/2] with the data intact.
Prints PASS/FAIL per check, phase timings, then `N passed, N failed`.
A kernel panic or an early QEMU exit fails the run at once.
"""

import argparse
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "qemu"))
from opie_cluster import Cluster, ClusterError, NodeFailed  # noqa: E402

results = []
GROUP = "--name g1 --cluster lab"
MEMBERS = "/dev/vdb /dev/vdc /dev/vdd"


def check(name, ok, detail=""):
    results.append(bool(ok))
    print(f"{'PASS' if ok else 'FAIL'} {name}" + (f": {detail}" if detail and not ok else ""), flush=True)
    return ok


def wait_up(c, n, t, since=0):
    c.wait_for("isu1", r"opie supervisor started", timeout=ARGS.boot_timeout, since=since)
    print(f"boot {n}: supervisor up {time.monotonic() - t:.1f} s after QEMU start", flush=True)


def reboot(c, n, power_cut):
    """Power-cut (SIGKILL) or stop the VM (None: it is already down), then
    start it on the same disks."""
    if power_cut:
        c.kill("isu1")
    elif power_cut is not None:
        c.stop("isu1")
    since = c.mark("isu1")
    t = time.monotonic()
    c.restart("isu1")
    wait_up(c, n, t, since)


def sh(c, cmd, timeout=120):
    return c.shell("isu1", cmd, timeout=timeout)


def timed(label, c, cmd, timeout=180):
    t = time.monotonic()
    rc, out = sh(c, cmd, timeout)
    print(f"  {label}: {time.monotonic() - t:.1f} s (exit {rc})", flush=True)
    return rc, out


def boot1(c):
    rc, out = sh(c, "modprobe raid1 && mdadm --create /dev/md9 --level=1 --raid-devices=2 --run --name=other"
                    " --homehost=elsewhere /dev/vde missing && mdadm --stop /dev/md9")
    check("foreign RAID1 of cluster 'elsewhere' made on vde", rc == 0, out[-400:])
    rc, out = timed("create-group over a foreign disk", c, f"opie storage create-group {GROUP} /dev/vdb /dev/vdc /dev/vde")
    check("create-group refuses the foreign disk, naming it",
          rc != 0 and "refusing /dev/vde: it holds data of another cluster" in out and "elsewhere:other" in out, out[-600:])
    rc, out = sh(c, "mdadm --examine /dev/vdb; mdadm --examine /dev/vdc; cat /proc/mdstat")
    check("the refused run wrote nothing (vdb, vdc still blank, no array)",
          out.count("No md superblock detected") == 2 and "md0" not in out, out[-600:])

    # Start the set-up in the background and cut the power in the middle
    # of it: as soon as step 3 (vgcreate) begins.
    t = time.monotonic()
    sh(c, f"opie storage create-group {GROUP} {MEMBERS} >/tmp/cg.log 2>&1 &")
    log = ""
    while time.monotonic() - t < 60 and not re.search(r"^step 3:|^opie:|group g1 up", log, re.M):
        rc, log = sh(c, "cat /tmp/cg.log")
    c.kill("isu1")
    print(f"  power cut {time.monotonic() - t:.1f} s into create-group, its output so far:", flush=True)
    print("\n".join("    " + l for l in log.splitlines() if l.strip()), flush=True)
    before = re.findall(r"^step \d+: (\S+ \S+)", log, re.M)
    check("power cut landed in the middle of create-group (steps: create RAID5, PV, VG begun)",
          before[:3] == ["create RAID5", "create LVM", "create volume"] and "group g1 up" not in log, log[-600:])
    return before


def boot2(c, before):
    rc, out = timed("create-group after the power cut (resume)", c, f"opie storage create-group {GROUP} {MEMBERS}")
    print("\n".join("    " + l for l in out.splitlines() if l.strip()), flush=True)
    steps = re.findall(r"^step \d+: (\S+ \S+)", out, re.M)
    check("create-group resumes: assembles the array it made (no second create) and finishes with the mount",
          rc == 0 and "group g1 up" in out and steps[:1] == ["assemble /dev/md0"]
          and "create RAID5" not in out and steps[-1:] == ["mount /dev/opie_g1/data"], out[-1500:])
    done = set(before) | set(steps)
    want = {"create RAID5", "create LVM", "create volume", "create opie_g1/data:", "make ext4", "mount /dev/opie_g1/data"}
    check("before and after the cut together: RAID5, PV, VG, LV, mkfs, mount", want <= done, repr((before, steps)))
    rc, out = sh(c, "mdadm --detail --export /dev/md0; mdadm --detail /dev/md0 | grep -i bitmap; cat /proc/mdstat")
    check("md0 is RAID5 over vdb vdc vdd named lab:g1 with an internal bitmap",
          "MD_LEVEL=raid5" in out and "MD_NAME=lab:g1" in out and "MD_DEVICES=3" in out
          and "Intent Bitmap : Internal" in out and all(f"MD_DEVICE_dev_{d}_DEV" in out for d in ("vdb", "vdc", "vdd")),
          out[-800:])
    rc, out = sh(c, "vgs --noheadings --separator '|' -o vg_extent_count,vg_free_count opie_g1")
    m = re.search(r"(\d+)\|(\d+)", out)
    ok = bool(m) and int(m.group(2)) == -(-int(m.group(1)) * 15 // 100)
    check("15 % of the VG's extents left free for snapshots", ok, out)
    rc, out = sh(c, "grep ' /srv/g1 ' /proc/mounts; dumpe2fs -h /dev/opie_g1/data 2>/dev/null"
                    " | grep -E 'features|mount options|volume name'")
    check("ext4 64-bit with a journal, labelled g1, mounted at /srv/g1 with acl,user_xattr",
          re.search(r"^/dev/(opie_g1/data|mapper/opie_g1-data) /srv/g1 ext4 rw", out, re.M) and "64bit" in out and "has_journal" in out
          and re.search(r"volume name:\s+g1", out) and "user_xattr" in out and "acl" in out, out[-800:])
    rc, out = timed("create-group again", c, f"opie storage create-group {GROUP} {MEMBERS}")
    check("create-group again changes nothing", rc == 0 and "already up" in out and "step 1" not in out, out[-600:])
    rc, out = sh(c, "dd if=/dev/urandom of=/srv/g1/data.bin bs=64k count=64 2>/dev/null && mkdir -p /srv/g1/share"
                    " && echo hello >/srv/g1/share/note && sync && sha256sum /srv/g1/data.bin")
    digest = out.split()[0] if rc == 0 and out else None
    check("4 MiB written and synced", digest is not None and len(digest) == 64, out)
    return digest


def boot3(c, digest):
    rc, out = sh(c, "cat /proc/mdstat; mount | grep /srv/g1")
    check("after the power cut nothing is assembled or mounted", "md0" not in out and "/srv/g1" not in out, out)
    rc, out = timed("assemble after power cut", c, f"opie storage assemble {GROUP} {MEMBERS}")
    print("\n".join("    " + l for l in out.splitlines() if l.strip()), flush=True)
    steps = re.findall(r"^step \d+: (\S+)", out, re.M)
    check("assemble: assemble, activate, mount", rc == 0 and steps == ["assemble", "activate", "mount"], out[-1000:])
    rc, out = sh(c, "sha256sum /srv/g1/data.bin; cat /srv/g1/share/note")
    check("data intact after power cut and re-assembly", digest and digest in out and "hello" in out, out)
    rc, out = sh(c, "opie storage status")
    check("opie storage status names the group and its mount",
          rc == 0 and "/dev/md0: lab:g1 raid5" in out and "mounted at /srv/g1" in out, out)
    print("\n".join("    " + l for l in out.splitlines()), flush=True)
    rc, out = timed("assemble again", c, f"opie storage assemble {GROUP} {MEMBERS}")
    check("assemble again changes nothing", rc == 0 and "already up" in out, out[-400:])
    tools(c)
    # A clean stop this time, so boot 4 sees a clean array minus one member.
    rc, out = sh(c, "umount /srv/g1 && vgchange -an opie_g1 && mdadm --stop /dev/md0 && sync")
    check("clean stop", rc == 0, out[-400:])


def tools(c):
    """The other Host calls through opie, over the real exportfs,
    ksmbd.adduser, ksmbd.control and resize2fs."""
    rc, out = sh(c, "modprobe nfsd && mount -t nfsd nfsd /proc/fs/nfsd && opie storage exports")
    check("opie storage exports: none yet", rc == 0 and "no NFS exports" in out, out)
    rc, out = timed("export", c, "opie storage export --client 10.77.0.0/24 --path /srv/g1/share"
                                 " --options rw,sync,no_subtree_check,fsid=101 && opie storage exports")
    check("export, then exportfs -v parsed back with its options",
          rc == 0 and re.search(r"^/srv/g1/share 10\.77\.0\.0/24 \(.*\brw\b.*\)", out, re.M)
          and "sync" in out and "fsid=101" in out, out)
    rc, out = sh(c, "opie storage export --client '*' --path /srv/g1/nonexistent")
    check("exporting a missing directory is refused before exportfs runs",
          rc != 0 and "/srv/g1/nonexistent: not a directory" in out, out)
    rc, out = sh(c, "opie storage export --client '*' --path /srv/g1/share --options rw,no_such_option")
    check("a failing exportfs reports its exit status and stderr",
          rc != 0 and "exportfs -o rw,no_such_option *:/srv/g1/share: exit status" in out
          and "no_such_option" in out.split("exit status", 1)[-1], out)
    rc, out = sh(c, "opie storage unexport --client 10.77.0.0/24 --path /srv/g1/share && opie storage exports")
    check("unexport leaves no exports", rc == 0 and "no NFS exports" in out, out)

    rc, out = sh(c, "modprobe ksmbd && modprobe cifs && mkdir -p /etc/ksmbd /mnt/s && printf '[global]\\n"
                    "\\tnetbios name = opietest\\n[g1]\\n\\tpath = /srv/g1/share\\n\\tread only = no\\n"
                    "\\tforce user = root\\n' >/etc/ksmbd/ksmbd.conf && ksmbd.mountd && sleep 1")
    check("ksmbd.mountd started with share g1", rc == 0, out)
    rc, out = timed("smb-user + smb-reload", c, "printf 'Secret-1\\n' | opie storage smb-user --user alice"
                                                " && opie storage smb-reload")
    check("smb-user adds alice (ksmbd.adduser), smb-reload (ksmbd.control -r)", rc == 0, out)
    rc, out = sh(c, "mount.cifs //127.0.0.1/g1 /mnt/s -o username=alice,password=Secret-1,vers=3.1.1"
                    " && cat /mnt/s/note && umount /mnt/s")
    check("alice mounts the share over SMB3 and reads the group's file", rc == 0 and "hello" in out, out[-400:])
    rc, out = sh(c, "printf 'Secret-2\\n' | opie storage smb-user --user alice --update && mount.cifs //127.0.0.1/g1"
                    " /mnt/s -o username=alice,password=Secret-1,vers=3.1.1; echo old=$?; mount.cifs //127.0.0.1/g1"
                    " /mnt/s -o username=alice,password=Secret-2,vers=3.1.1 && echo new=ok && umount /mnt/s")
    check("smb-user --update changes the password (old refused, new works)",
          "new=ok" in out and "old=0" not in out, out[-400:])
    sh(c, "ksmbd.control -s; sleep 1")

    rc, out = sh(c, "df -kP /srv/g1 | tail -1; lvextend -l +1 opie_g1/data >/dev/null && opie storage resize-fs"
                    " /dev/opie_g1/data && df -kP /srv/g1 | tail -1")
    sizes = [int(l.split()[1]) for l in out.splitlines() if l.startswith("/dev/")]
    check("resize-fs grows the mounted ext4 online after lvextend",
          rc == 0 and len(sizes) == 2 and sizes[1] > sizes[0], out[-400:])


def boot4(c, digest):
    rc, out = sh(c, "for d in /sys/bus/pci/devices/*; do [ -d $d/virtio*/block/vdd ] && echo 1 >$d/remove; done;"
                    " sleep 1; ls /dev/vd*")
    check("vdd hot-removed (an ISU that is gone)", rc == 0 and "/dev/vdd" not in out, out)
    rc, out = timed("assemble from 1 of 3", c, f"opie storage assemble {GROUP} /dev/vdb /dev/vdd")
    check("assembling from 1 of 3 members is refused",
          rc != 0 and "1 of its 3 members" in out and "never fewer than all but one" in out, out[-600:])
    rc, out = sh(c, "mdadm --assemble --run /dev/md0 /dev/vdb /dev/vdc >/dev/null 2>&1"
                    " && echo inactive >/sys/block/md0/md/array_state; grep md0 /proc/mdstat")
    check("md0 left inactive, holding vdb and vdc", "md0 : inactive" in out, out)
    rc, out = timed("degraded assemble", c, f"opie storage assemble {GROUP} {MEMBERS}")
    check("assemble with 2 of 3 runs degraded", rc == 0 and "degraded: 1 missing" in out, out[-800:])
    rc, out = sh(c, "cat /proc/mdstat; sha256sum /srv/g1/data.bin")
    check("degraded array [3/2] serves the data intact", "[3/2]" in out and digest and digest in out, out)


def main():
    global ARGS
    ap = argparse.ArgumentParser(description="QEMU test: opie storage over real mdadm/LVM/ext4")
    ap.add_argument("--image", default=os.path.join(REPO, "build", "qemu"))
    ap.add_argument("--logs", default=os.path.join(REPO, "build", "qemu-test-logs", "storage"))
    ap.add_argument("--boot-timeout", type=float, default=120)
    ARGS = ap.parse_args()
    t0 = time.monotonic()
    try:
        c = Cluster(heads=0, isus=1, image=ARGS.image, data_disks=4, data_disk_mib=32, mem=512, log_dir=ARGS.logs)
    except ClusterError as e:
        check("VM set up", False, str(e))
        c = None
    if c is not None:
        try:
            t = time.monotonic()
            c.start()
            wait_up(c, 1, t)
            before = boot1(c)  # ends with a power cut in the middle of create-group
            print(f"boot 1 phase took {time.monotonic() - t:.1f} s", flush=True)
            t = time.monotonic()
            reboot(c, 2, power_cut=None)
            digest = boot2(c, before)
            print(f"boot 2 phase took {time.monotonic() - t:.1f} s", flush=True)
            t = time.monotonic()
            reboot(c, 3, power_cut=True)  # nothing unmounted, no array stopped
            boot3(c, digest)
            print(f"boot 3 phase took {time.monotonic() - t:.1f} s", flush=True)
            t = time.monotonic()
            reboot(c, 4, power_cut=False)
            boot4(c, digest)
            print(f"boot 4 phase took {time.monotonic() - t:.1f} s", flush=True)
        except NodeFailed as e:
            check("VM ran without kernel panic or QEMU exit", False, str(e))
        except ClusterError as e:
            check("VM usable", False, str(e))
        finally:
            c.shutdown()
        time.sleep(0.3)
        check("shutdown leaves no process behind", not c.leftover_processes(), repr(c.leftover_processes()))
    passed = sum(results)
    failed = len(results) - passed
    print(f"storage tools test wall time {time.monotonic() - t0:.1f} s; logs in {ARGS.logs}")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
