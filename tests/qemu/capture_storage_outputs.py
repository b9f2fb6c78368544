#!/usr/bin/env python3
"""Capture real storage-tool output from a QEMU guest as parser test data.

    tests/qemu/capture_storage_outputs.py [--image build/qemu]
        [--out firmware/core/testdata/storage]

Boots ONE ISU-role VM (1 vCPU) with six 48 MiB data disks and runs the
stock tools of the image by hand (not through opie), so the files are what
mdadm 4.4, lvm2 2.03, e2fsprogs and nfs-utils of Debian trixie really
print. vdb-vdd become RAID5 "g1" of cluster "lab" (then VG opie_g1, LV
data, ext4); vde+vdf a RAID1 "other" of cluster "elsewhere" (the foreign
array); the blank-disk examine comes from vdf before that. /proc/mdstat
and --detail are caught during the initial sync, clean, degraded, during
recovery onto a re-added member, during a reshape (grow 3 -> 4 with vdg),
inactive, and stopped. LVM reports use the options opie_sys::host uses.

The image has no blkid: head-*.bin hold a device's first KiB for Opie's
own signature probe. Text files hold the raw stdout only (stderr, when
there is any, goes to a sibling .stderr file); this script is their
provenance. Parser tests pin values from these captures (UUIDs, progress
figures): a new capture means updating them.
"""

import argparse
import base64
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "qemu"))
from opie_cluster import Cluster  # noqa: E402


# The report options opie_sys::host uses: the image's lvm.conf turns on
# log/command_names, which would prefix every report line with "lvs ".
LVM_REPORT = ("--config 'log {command_names=0 prefix=\"\"}' --noheadings --separator '|'"
              " --units b --nosuffix")
PVS_FIELDS = "pv_name,vg_name,pv_size,pv_free"
VGS_FIELDS = "vg_name,vg_size,vg_free,vg_extent_size,vg_extent_count,vg_free_count"
LVS_FIELDS = "lv_name,vg_name,lv_path,lv_size,lv_attr,origin"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--image", default=os.path.join(REPO, "build", "qemu"))
    ap.add_argument("--out", default=os.path.join(REPO, "firmware", "core", "testdata", "storage"))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    c = Cluster(heads=0, isus=1, image=a.image, data_disks=6, data_disk_mib=48, mem=512)
    t0 = time.monotonic()
    try:
        c.start()
        c.wait_for("isu1", r"opie supervisor started", timeout=120)

        def sh(cmd, timeout=120, ok=(0,)):
            rc, out = c.shell("isu1", cmd, timeout=timeout)
            if rc not in ok:
                raise SystemExit(f"capture: `{cmd}` exit {rc}:\n{out}")
            return rc, out

        def save(name, cmd, ok=(0,)):
            # stdout only, stderr into a sibling file when present
            rc, out = sh(f"{cmd} 2>/tmp/err; echo \"@@rc=$?\"; cat /tmp/err >&2", ok=(0,))
            body, _, rest = out.rpartition("@@rc=")
            code_s, _, err = rest.partition("\n")
            code = int(code_s)
            if code not in ok:
                raise SystemExit(f"capture: `{cmd}` exit {code}:\n{out}")
            with open(os.path.join(a.out, name), "w") as f:
                f.write(body)
            if err.strip():
                with open(os.path.join(a.out, name.rsplit(".", 1)[0] + ".stderr"), "w") as f:
                    f.write(err.rstrip("\n") + "\n")
            print(f"captured {name} (exit {code}, {len(body)} bytes)", flush=True)
            return body

        def save_bin(name, dev, kib):
            # The device's first `kib` KiB, the bytes Opie's signature probe reads.
            rc, out = sh(f"dd if={dev} bs=1024 count={kib} 2>/dev/null | base64 -w0; echo")
            data = base64.b64decode(out.strip().splitlines()[-1])
            with open(os.path.join(a.out, name), "wb") as f:
                f.write(data)
            print(f"captured {name} ({len(data)} bytes of {dev})", flush=True)

        sh("modprobe raid456 && modprobe raid1 && modprobe dm-snapshot")
        save("examine-blank.txt", "mdadm --examine --export /dev/vdf", ok=(1, 2))
        # The foreign array: another cluster's RAID1 over vde+vdf.
        sh("mdadm --create /dev/md9 --level=1 --raid-devices=2 --metadata=1.2 --run"
           " --name=other --homehost=elsewhere /dev/vde /dev/vdf")
        save("examine-foreign.txt", "mdadm --examine --export /dev/vdf")
        save_bin("head-foreign-member.bin", "/dev/vdf", 8)
        sh("mdadm --wait /dev/md9 || true; mdadm --stop /dev/md9")
        # Our group: RAID5 over vdb vdc vdd.
        sh("mdadm --create /dev/md0 --level=5 --raid-devices=3 --bitmap=internal --run"
           " --name=g1 --homehost=lab /dev/vdb /dev/vdc /dev/vdd")
        save("mdstat-resync.txt", "cat /proc/mdstat")
        save("detail-resync.txt", "mdadm --detail --export /dev/md0")
        sh("mdadm --wait /dev/md0 || true", timeout=180)
        save("detail-clean.txt", "mdadm --detail --export /dev/md0")
        save("examine-member.txt", "mdadm --examine --export /dev/vdb")
        save_bin("head-member.bin", "/dev/vdb", 8)
        save("mdstat-clean.txt", "cat /proc/mdstat")
        # LVM + ext4 (the Opie layout: VG opie_g1, LV data, 85 % of the VG).
        sh("pvcreate -y /dev/md0")
        save("pvs-novg.txt", "pvs " + LVM_REPORT + " -o " + PVS_FIELDS)
        save("vgs-none.txt", "vgs " + LVM_REPORT + " -o " + VGS_FIELDS)
        sh("vgcreate opie_g1 /dev/md0")
        save("vgs.txt", "vgs " + LVM_REPORT + " -o " + VGS_FIELDS)
        save("lvs-empty.txt", "lvs " + LVM_REPORT + " -o " + LVS_FIELDS)
        sh("lvcreate -y -Wy -n data -l 85%VG opie_g1")
        save("lvs.txt", "lvs " + LVM_REPORT + " -o " + LVS_FIELDS)
        save("pvs.txt", "pvs " + LVM_REPORT + " -o " + PVS_FIELDS)
        save("vgs-after-lv.txt", "vgs " + LVM_REPORT + " -o " + VGS_FIELDS)
        save_bin("head-pv.bin", "/dev/md0", 8)
        sh("mkfs.ext4 -q -F -O 64bit,has_journal -L g1 /dev/opie_g1/data")
        save_bin("head-ext4.bin", "/dev/opie_g1/data", 4)
        sh("mkdir -p /srv/g1 && mount -o acl,user_xattr /dev/opie_g1/data /srv/g1")
        save("proc-mounts.txt", "cat /proc/mounts")
        sh("lvcreate -y -s -n snap -L 4M opie_g1/data")
        save("lvs-snapshot.txt", "lvs " + LVM_REPORT + " -o " + LVS_FIELDS)
        sh("lvremove -y opie_g1/snap")
        # exportfs -v with two exports.
        sh("mount -t nfsd nfsd /proc/fs/nfsd && mkdir -p /srv/g1/docs /srv/g1/pub"
           " && exportfs -o rw,sync,no_subtree_check,fsid=101 10.77.0.0/24:/srv/g1/docs"
           " && exportfs -o ro,sync,no_subtree_check,fsid=102,all_squash '*:/srv/g1/pub'")
        save("exportfs-v.txt", "exportfs -v")
        sh("exportfs -ua")
        save("exportfs-v-empty.txt", "exportfs -v")
        # Degraded, then recovery onto a re-added member.
        sh("mdadm /dev/md0 --fail /dev/vdd && mdadm /dev/md0 --remove /dev/vdd")
        save("mdstat-degraded.txt", "cat /proc/mdstat")
        save("detail-degraded.txt", "mdadm --detail --export /dev/md0")
        sh("mdadm --zero-superblock /dev/vdd && mdadm /dev/md0 --add /dev/vdd")
        save("mdstat-recovery.txt", "cat /proc/mdstat")
        save("detail-recovery.txt", "mdadm --detail --export /dev/md0")
        sh("mdadm --wait /dev/md0 || true", timeout=180)
        # Reshape: grow 3 -> 4 with vdg.
        sh("mdadm /dev/md0 --add /dev/vdg && mdadm --grow /dev/md0 --raid-devices=4")
        save("mdstat-reshape.txt", "cat /proc/mdstat")
        save("detail-reshape.txt", "mdadm --detail --export /dev/md0")
        sh("mdadm --wait /dev/md0 || true", timeout=240)
        save("mdstat-after-reshape.txt", "cat /proc/mdstat")
        # Inactive (stopped, members kept), then stopped and gone.
        sh("umount /srv/g1 && vgchange -an opie_g1 && echo inactive >/sys/block/md0/md/array_state")
        save("mdstat-inactive.txt", "cat /proc/mdstat")
        sh("mdadm --stop /dev/md0")
        save("detail-stopped.txt", "mdadm --detail --export /dev/md0", ok=(1,))
        save("mdstat-empty.txt", "cat /proc/mdstat")
    finally:
        c.shutdown()
    print(f"capture took {time.monotonic() - t0:.1f} s")


if __name__ == "__main__":
    main()
