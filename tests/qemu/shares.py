#!/usr/bin/env python3
"""QEMU test of Opie's shares (issue 6 "Shares", DESIGN §7).

    tests/qemu/shares.py [--image build/qemu] [--logs DIR]

One head VM (LAN eth1 192.168.77.1/24) and the client VM (192.168.77.100)
on the LAN switch, 1 vCPU each. The launcher gives heads no data disks, so
the head's "3 small local data disks" are three 32 MiB loop devices over
files in its RAM; everything above them is real: md RAID5, LVM, ext4
(`opie storage create-group`), the kernel NFS server and ksmbd started and
configured by the supervisor through `opie share` / `opie user` over its
local socket. The client uses the image's mount.nfs and mount.cifs.

Checks: group up; `opie user add` (password on stdin); `opie share create
docs --nfs 192.168.77.0/24 --smb --smb-user alice` serves it (exports line
with sync/fsid/root_squash, ksmbd.conf, directory nobody:nogroup 2775);
applying again changes nothing; bad input (duplicate, host bits, '..', a
symlink on the way, unknown user, unmounted pool) is refused and changes
nothing; the client writes over NFSv3, reads it over NFSv4.2 and SMB3 with
the same sha256, writes over SMB3 and reads it over both NFS versions; a
wrong SMB password is refused; a read-only share refuses writes over NFS
and SMB and accepts them after `opie share change --nfs-rw`; a group's
members get in over SMB, others do not; the
supervisor killed and respawned by init reads its shares back; a removed
share is no longer mountable over NFSv3, NFSv4 or SMB while its files stay
on the head. Prints PASS/FAIL per check, timings, `N passed, N failed`.
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
HEAD_IP = "192.168.77.1"
LAN = "192.168.77.0/24"


def check(name, ok, detail=""):
    results.append(bool(ok))
    print(f"{'PASS' if ok else 'FAIL'} {name}" + (f": {detail}" if detail and not ok else ""), flush=True)
    return ok


def head(c, cmd, timeout=120):
    return c.shell("head1", cmd, timeout=timeout)


def client(c, cmd, timeout=120):
    return c.shell("client", cmd, timeout=timeout)


def timed(label, c, node, cmd, timeout=180):
    t = time.monotonic()
    rc, out = c.shell(node, cmd, timeout=timeout)
    print(f"  {label}: {time.monotonic() - t:.1f} s (exit {rc})", flush=True)
    return rc, out


def sha(out):
    m = re.search(r"\b([0-9a-f]{64})\b", out)
    return m.group(1) if m else None


def setup(c):
    rc, out = timed("loop devices + create-group", c, "head1",
                    "modprobe loop && mkdir -p /tmp/disks && for i in 0 1 2; do"
                    " dd if=/dev/zero of=/tmp/disks/d$i bs=1M count=0 seek=32 2>/dev/null &&"
                    " losetup /dev/loop$i /tmp/disks/d$i || exit 1; done &&"
                    " opie storage create-group --name g1 --cluster lab /dev/loop0 /dev/loop1 /dev/loop2")
    check("opie storage create-group: RAID5 + LVM + ext4 mounted at /srv/g1",
          rc == 0 and "group g1 up" in out and "/srv/g1" in out, out[-800:])
    rc, out = head(c, "printf 'Secret-1\\n' | opie user add alice && opie user list")
    check("opie user add alice (password on stdin); listed", rc == 0 and "user alice added" in out
          and "user alice" in out, out)
    rc, out = timed("share create", c, "head1", f"opie share create docs --nfs {LAN} --smb --smb-user alice")
    check("opie share create docs --nfs --smb --smb-user alice: created and served",
          rc == 0 and "share docs created at /srv/g1/docs" in out and "NFS server started" in out
          and "SMB server started" in out, out)
    rc, out = head(c, "cat /etc/exports; cat /etc/ksmbd/ksmbd.conf; stat -c 'dir %u:%g %a' /srv/g1/docs;"
                      " stat -c 'pwddb %a' /etc/ksmbd/ksmbdpwd.db; cat /proc/fs/nfsd/threads")
    check("/etc/exports: sync, root_squash, fsid=1 for the LAN",
          f"/srv/g1/docs {LAN}(rw,sync,no_subtree_check,root_squash,fsid=1)" in out, out)
    check("ksmbd.conf: [docs] read-write for alice", re.search(
        r"\[docs\]\n\tpath = /srv/g1/docs\n\tread only = no\n\tguest ok = no\n\tvalid users = alice\n", out), out)
    check("share directory made nobody:nogroup mode 2775; ksmbdpwd.db mode 600",
          "dir 65534:65534 2775" in out and "pwddb 600" in out, out)
    rc, out = head(c, "opie share apply")
    check("applying again changes nothing", rc == 0 and "nothing needed changing" in out, out)


def refusals(c):
    rc, before = head(c, "opie share list; md5sum /etc/exports /etc/ksmbd/ksmbd.conf")
    cases = [
        ("duplicate name", f"opie share create docs --nfs {LAN}", 'share "docs" already exists'),
        ("network with host bits", "opie share create x --nfs 192.168.77.5/24",
         "host bits are set; the network is 192.168.77.0/24"),
        ("path with ..", f"opie share create x --path ../../etc --nfs {LAN}", "would leave the data volume"),
        ("symlink on the way", f"ln -sfn /etc /srv/g1/evil && opie share create evil --path evil/x --nfs {LAN}",
         "/srv/g1/evil is a symlink"),
        ("unknown SMB user", "opie share create x --smb --smb-user bob", 'user "bob" does not exist'),
        ("pool that is not a mounted data volume", f"opie share create x --pool /tmp --nfs {LAN}",
         "/tmp is not a mounted Opie data volume"),
        ("bad share name", f"opie share create 'a b' --nfs {LAN}", "is not allowed"),
    ]
    for name, cmd, want in cases:
        rc, out = head(c, cmd)
        check(f"refused: {name}", rc != 0 and want in out and "nothing changed" in out, out)
    rc, after = head(c, "opie share list; md5sum /etc/exports /etc/ksmbd/ksmbd.conf; ls /etc/x 2>&1")
    check("refusals changed neither the record nor the served files", after.split("\nls:")[0] == before
          and "No such file" in after, f"before={before!r} after={after!r}")


def protocols(c):
    rc, out = client(c, "for m in nfs nfsv3 nfsv4 cifs; do modprobe $m || exit 1; done;"
                        " mkdir -p /mnt/n3 /mnt/n4 /mnt/s /mnt/p3 /mnt/ps /mnt/x")
    check("client: NFS and CIFS modules", rc == 0, out)
    rc, out = timed("NFSv3 mount + 1 MiB write", c, "client",
                    f"mount -t nfs -o vers=3,nolock {HEAD_IP}:/srv/g1/docs /mnt/n3 &&"
                    " dd if=/dev/urandom of=/mnt/n3/from-nfs3.bin bs=64k count=16 2>/dev/null && sync &&"
                    " sha256sum /mnt/n3/from-nfs3.bin")
    d3 = sha(out)
    check("client mounts docs over NFSv3 and writes 1 MiB", rc == 0 and d3, out[-400:])
    rc, out = timed("NFSv4.2 mount + read", c, "client",
                    f"mount -t nfs4 -o vers=4.2 {HEAD_IP}:/srv/g1/docs /mnt/n4 && sha256sum /mnt/n4/from-nfs3.bin")
    check("NFSv4.2 reads the NFSv3 file back, same sha256", rc == 0 and d3 and sha(out) == d3, out[-400:])
    rc, out = timed("SMB3 mount + read", c, "client",
                    f"mount.cifs //{HEAD_IP}/docs /mnt/s -o username=alice,password=Secret-1,vers=3.1.1"
                    " && sha256sum /mnt/s/from-nfs3.bin")
    check("SMB3 (mount.cifs, alice) reads the NFS file back, same sha256", rc == 0 and d3 and sha(out) == d3,
          out[-400:])
    rc, out = timed("SMB3 write", c, "client",
                    "dd if=/dev/urandom of=/mnt/s/from-smb.bin bs=64k count=16 2>/dev/null && sync &&"
                    " sha256sum /mnt/s/from-smb.bin")
    ds = sha(out)
    check("client writes 1 MiB over SMB3", rc == 0 and ds, out[-400:])
    rc, out = client(c, "sha256sum /mnt/n3/from-smb.bin /mnt/n4/from-smb.bin")
    check("NFSv3 and NFSv4.2 read the SMB file back, same sha256",
          rc == 0 and ds and out.count(ds) == 2, out[-400:])
    rc, out = head(c, "sha256sum /srv/g1/docs/from-nfs3.bin /srv/g1/docs/from-smb.bin;"
                      " stat -c '%n %u:%g' /srv/g1/docs/from-nfs3.bin /srv/g1/docs/from-smb.bin")
    check("both files are on the RAID volume, owned by nobody (root_squash / force user)",
          d3 in out and ds in out and out.count(" 65534:65534") == 2, out)
    rc, out = client(c, f"mount.cifs //{HEAD_IP}/docs /mnt/x -o username=alice,password=wrong,vers=3.1.1;"
                        " echo rc=$?; umount /mnt/x 2>/dev/null; true")
    check("a wrong SMB password is refused", "rc=0" not in out, out[-300:])
    return d3, ds


def read_only(c):
    rc, out = head(c, f"opie share create pub --nfs {LAN} --nfs-ro --smb --smb-ro --smb-user alice"
                      " && echo readme >/srv/g1/pub/readme && grep '^/srv/g1/pub ' /etc/exports")
    check("read-only share pub created (NFS ro, SMB read only)",
          rc == 0 and f"{LAN}(ro,sync,no_subtree_check,root_squash,fsid=2)" in out, out)
    rc, out = client(c, f"mount -t nfs -o vers=3,nolock {HEAD_IP}:/srv/g1/pub /mnt/p3 &&"
                        f" mount.cifs //{HEAD_IP}/pub /mnt/ps -o username=alice,password=Secret-1,vers=3.1.1 &&"
                        " cat /mnt/p3/readme /mnt/ps/readme; echo x >/mnt/p3/w 2>/dev/null; echo nfs=$?;"
                        " echo x >/mnt/ps/w 2>/dev/null; echo smb=$?")
    check("read-only share: reads work over NFS and SMB", out.count("readme") == 2, out)
    check("read-only share refuses writes over NFS and SMB",
          re.search(r"nfs=[1-9]", out) and re.search(r"smb=[1-9]", out), out)
    rc, out = head(c, "opie share change pub --nfs-rw")
    check("opie share change pub --nfs-rw", rc == 0 and "share pub changed" in out and "NFS exports reloaded" in out,
          out)
    rc, out = client(c, "echo w >/mnt/p3/w && cat /mnt/p3/w")
    check("after the change NFS writes to pub succeed", rc == 0 and out.strip() == "w", out)
    rc, out = head(c, "printf 'Secret-B\\n' | opie user add bob && opie group set staff alice bob"
                      " && opie share change pub --smb-user @staff && grep -A5 '^\\[pub\\]' /etc/ksmbd/ksmbd.conf")
    check("group staff (alice, bob) as pub's SMB users: expanded in ksmbd.conf",
          rc == 0 and "valid users = alice, bob" in out, out)
    rc, out = client(c, f"umount /mnt/ps; mount.cifs //{HEAD_IP}/pub /mnt/ps -o username=bob,password=Secret-B,vers=3.1.1"
                        f" && cat /mnt/ps/readme; mount.cifs //{HEAD_IP}/docs /mnt/x -o username=bob,password=Secret-B,"
                        "vers=3.1.1; echo docs=$?; umount /mnt/x 2>/dev/null; true")
    check("bob (through @staff) mounts pub over SMB; docs (alice only) refuses him",
          "readme" in out and re.search(r"docs=[1-9]", out), out)
    rc, out = head(c, "opie user remove alice")
    check("removing a user a share names is refused", rc != 0 and "still used by share docs, group staff" in out, out)


def restart(c):
    t = time.monotonic()
    rc, out = head(c, "for p in /proc/[0-9]*; do [ \"$(tr '\\0' ' ' <$p/cmdline 2>/dev/null)\" = '/usr/bin/opie ' ]"
                      " && kill ${p#/proc/} && echo killed ${p#/proc/}; done; sleep 3;"
                      " for i in $(seq 30); do opie share list >/tmp/l 2>&1 && break; sleep 1; done; cat /tmp/l")
    check("supervisor killed, respawned by init, reads its shares back",
          "killed" in out and "docs: /srv/g1/docs (fsid 1)" in out and "pub: /srv/g1/pub (fsid 2)" in out, out)
    print(f"  supervisor restart: {time.monotonic() - t:.1f} s", flush=True)
    rc, out = client(c, "cat /mnt/n4/from-nfs3.bin | sha256sum")
    check("the NFSv4 mount still serves after the restart", rc == 0 and sha(out), out)


def remove(c, d3, ds):
    client(c, "umount /mnt/n3 /mnt/n4 /mnt/s /mnt/p3 /mnt/ps")
    rc, out = head(c, "opie share remove docs")
    check("opie share remove docs says the directory stays",
          rc == 0 and "no longer exported over NFS or SMB; its directory /srv/g1/docs and the files in it are kept"
          in out, out)
    rc, out = timed("mount attempts of the removed share", c, "client",
                    f"mount -t nfs -o vers=3,nolock,retry=0 {HEAD_IP}:/srv/g1/docs /mnt/n3; echo v3=$?;"
                    f" mount -t nfs4 -o vers=4.2,retry=0 {HEAD_IP}:/srv/g1/docs /mnt/n4; echo v4=$?;"
                    f" mount.cifs //{HEAD_IP}/docs /mnt/s -o username=alice,password=Secret-1,vers=3.1.1; echo smb=$?",
                    timeout=240)
    check("the removed share is not mountable over NFSv3, NFSv4 or SMB",
          all(re.search(rf"{p}=[1-9]", out) for p in ("v3", "v4", "smb")), out[-800:])
    rc, out = head(c, "sha256sum /srv/g1/docs/*.bin; grep -c docs /etc/exports; grep -c '\\[docs\\]' /etc/ksmbd/ksmbd.conf")
    check("its files stay on the head", d3 and ds and d3 in out and ds in out, out)


def main():
    ap = argparse.ArgumentParser(description="QEMU test: shares over NFS v3/v4 and SMB3")
    ap.add_argument("--image", default=os.path.join(REPO, "build", "qemu"))
    ap.add_argument("--logs", default=os.path.join(REPO, "build", "qemu-test-logs", "shares"))
    ap.add_argument("--boot-timeout", type=float, default=120)
    a = ap.parse_args()
    t0 = time.monotonic()
    try:
        c = Cluster(heads=1, isus=0, client=True, image=a.image, mem=768, log_dir=a.logs,
                    extra_cmdline={"head1": f"opietest.ip=eth1:{HEAD_IP}/24"})
    except ClusterError as e:
        check("VMs set up", False, str(e))
        c = None
    if c is not None:
        try:
            c.start()
            c.wait_for("head1", r"opie supervisor started", timeout=a.boot_timeout)
            client(c, "true")
            print(f"head and client up {time.monotonic() - t0:.1f} s after start", flush=True)
            for phase in (setup, refusals, protocols, read_only, restart, remove):
                t = time.monotonic()
                if phase is protocols:
                    d3, ds = phase(c)
                elif phase is remove:
                    phase(c, d3, ds)
                else:
                    phase(c)
                print(f"{phase.__name__} took {time.monotonic() - t:.1f} s", flush=True)
        except NodeFailed as e:
            check("VMs ran without kernel panic or QEMU exit", False, str(e))
        except ClusterError as e:
            check("VMs usable", False, str(e))
        finally:
            c.shutdown()
        time.sleep(0.3)
        check("shutdown leaves no process behind", not c.leftover_processes(), repr(c.leftover_processes()))
    passed = sum(results)
    failed = len(results) - passed
    print(f"shares test wall time {time.monotonic() - t0:.1f} s; logs in {a.logs}")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
