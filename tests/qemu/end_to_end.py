#!/usr/bin/env python3
"""QEMU end-to-end test (issues 4 and 6): from blank disks to files a
client reads back after reboots.

One head, three ISUs with no static addresses, one client VM on the LAN:
  1. each ISU leases an address from the head's pool, says hello on the
     control channel and shows as pending; nothing joins before adoption;
  2. two ISUs are adopted as members, one as spare; adopted ISUs export
     their disk over fenced NBD (an unsigned attach is refused); the head
     attaches the members, creates RAID5 + LVM + ext4 and mounts it;
  3. a share is created with NFS and SMB; the client writes files over
     NFSv3 and SMB3 (each write ends with fsync: what an acknowledged write
     means) and reads each back over the other protocol;
  4. the whole cluster is rebooted: every ISU keeps its address, the group
     is assembled, the client reads every byte back intact;
  5. rebooted again with one member powered off: after the member wait the
     head starts the group degraded and the client still reads everything.

Prints PASS/FAIL per check and `N passed, N failed`; exits non-zero on any
failure. A kernel panic or an early QEMU exit fails at once with the log.
"""

import argparse
import ipaddress
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "qemu"))
from opie_cluster import Cluster, ClusterError, NodeFailed  # noqa: E402
from harness import check, status_until, summary  # noqa: E402

ISUS = ["isu1", "isu2", "isu3"]
NODES = ["head1"] + ISUS
POOL = (ipaddress.ip_address("10.77.0.100"), ipaddress.ip_address("10.77.0.199"))
HEAD_LAN = "192.168.77.1"
LAN = "192.168.77.0/24"
MEMBER_WAIT = 15
SMB = "-o username=alice,password=Secret-1,vers=3.1.1"


def leases(c, isus):
    """Each ISU's leased address (or None)."""
    got = {}
    for isu in isus:
        m = status_until(c, isu, r"^lease: (10\.77\.0\.\d+)/24 from 10\.77\.0\.1$")
        got[isu] = m.group(1) if m else None
    return got


def wait_started(c, nodes, since):
    for name in nodes:
        c.wait_for(name, r"opie supervisor started: role=\S+ hostname=" + name, timeout=180, since=since[name])


def sha(out):
    m = re.search(r"\b([0-9a-f]{64})\b", out)
    return m.group(1) if m else None


def mount_share(c, timeout=30):
    """Mounts docs over NFSv3 and SMB3 on the client; the head serves a
    group's shares within seconds of the group coming online."""
    deadline = time.monotonic() + timeout
    while True:
        rc, out = c.shell("client", "umount /mnt/n3 /mnt/s 2>/dev/null; mkdir -p /mnt/n3 /mnt/s && "
                                    f"mount -t nfs -o vers=3,nolock {HEAD_LAN}:/srv/g1/docs /mnt/n3"
                                    f" && mount.cifs //{HEAD_LAN}/docs /mnt/s {SMB} && echo mounted", timeout=120)
        if (rc == 0 and "mounted" in out) or time.monotonic() > deadline:
            return rc, out
        time.sleep(2)


def read_back(c, files):
    """sha256 of each file over NFS and over SMB: {name: (nfs, smb)}."""
    got = {}
    for f in files:
        _, a = c.shell("client", f"sha256sum /mnt/n3/{f}", timeout=120)
        _, b = c.shell("client", f"sha256sum /mnt/s/{f}", timeout=120)
        got[f] = (sha(a), sha(b))
    return got


def reboot(c, up):
    """Cuts the power of every node, then starts `up` again (the client
    stays up): only what was acknowledged as durable may survive."""
    c.shell("client", "umount /mnt/n3 /mnt/s; true")
    since = {n: c.mark(n) for n in NODES}
    for n in NODES:
        c.stop(n)
    for n in up:
        c.restart(n)
    wait_started(c, up, since)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--image", default=os.path.join(REPO, "build", "qemu"))
    ap.add_argument("--logs", default=os.path.join(REPO, "build", "qemu-test-logs", "end_to_end"))
    a = ap.parse_args()
    t0 = time.monotonic()
    c = Cluster(heads=1, isus=len(ISUS), client=True, image=a.image, data_disks=1, data_disk_mib=32,
                log_dir=a.logs, leased_isus=True,
                extra_cmdline={"head1": f"opietest.ip=eth1:{HEAD_LAN}/24 opie.member_wait={MEMBER_WAIT}"})
    try:
        c.start()
        wait_started(c, NODES, {n: 0 for n in NODES})

        # 1. Leases and pending ISUs.
        first = leases(c, ISUS)
        for isu, addr in first.items():
            check(f"{isu} leased an address from the pool", addr and POOL[0] <= ipaddress.ip_address(addr) <= POOL[1],
                  f"got {addr}")
        check("every ISU has its own address", len(set(first.values())) == len(ISUS), f"{first}")
        rc, out = c.shell("isu1", "ip -4 addr show dev eth0")
        check("isu1's leased address is on eth0", first["isu1"] and f"inet {first['isu1']}/24" in out, out)
        counters = status_until(c, "head1", r"^lease server: \d+ received, \d+ offers, ([3-9]|\d\d+) acks")
        check("the head's status counts the lease exchanges", counters)
        rc, out = c.shell("head1", "logread | grep 'opie-isu serial='")
        named = re.findall(r"opie-isu serial=MAC-\w+;key=[0-9a-f-]{24};disks=/dev/vdb:32MiB", out)
        check("the head's log names each new ISU from its DHCP option 43 (serial, key, disks)", len(set(named)) >= 3,
              out[-600:])
        pending = status_until(c, "head1", r"(?s)(isu: \S+ key \S+ pending adoption.*){3}")
        check("head lists three ISUs pending adoption", pending)
        _, head_status = c.shell("head1", "opie status")
        serials = sorted(re.findall(r"^isu: (\S+) key \S+ pending adoption", head_status, re.M))
        rc, out = c.shell("isu1", "opie status")
        check("a pending ISU exports nothing", "export: waiting for adoption" in out and "not adopted" in out, out)
        check("nothing is attached before adoption", status_until(c, "head1", r"^storage: group g1: waiting for members \(0 adopted", 5))

        # 2. Adoption, exports, group.
        for n, serial in enumerate(serials):
            role = "spare" if n == len(serials) - 1 else "member"
            rc, out = c.shell("head1", f"opie adopt {serial} --as {role}")
            check(f"adopt {serial} as {role}", rc == 0 and f"adopted {serial}" in out, out)
        for isu in ISUS:
            check(f"{isu} exports its data disk once adopted", status_until(c, isu, r"^export: normal, exports disk0 32 MiB$"))
        check("every ISU holds the head's cluster record (3 adopted)",
              all(status_until(c, isu, r"^cluster copy: generation 3, 3 adopted ISU\(s\)$") for isu in ISUS))
        rc, out = c.shell("head1", f"modprobe nbd; opie nbd-attach --server {first['isu1']}:10809 "
                                   "--export disk0 --device /dev/nbd9 2>&1")
        check("an attach without a signed epoch is refused", rc != 0 and "refused" in out.lower(), out)
        t_group = time.monotonic()
        online = status_until(c, "head1", r"^storage: group g1: online$", timeout=180)
        check("the head brings its RAID5 group online over the members' exports", online)
        print(f"adoption to group online: {time.monotonic() - t_group:.1f} s", flush=True)
        rc, out = c.shell("head1", "grep ' /srv/g1 ' /proc/mounts; cat /proc/mdstat")
        check("RAID5 over two NBD members, ext4 mounted at /srv/g1",
              "ext4" in out and "raid5" in out and "nbd0" in out and "nbd1" in out, out)

        # 3. A share over NFS and SMB.
        rc, out = c.shell("head1", "printf 'Secret-1\\n' | opie user add alice")
        check("opie user add alice", rc == 0, out)
        rc, out = c.shell("head1", f"opie share create docs --nfs {LAN} --smb --smb-user alice")
        check("opie share create docs (NFS and SMB)", rc == 0, out)
        rc, out = c.shell("client", "for m in nfs nfsv3 nfsv4 cifs; do modprobe $m || exit 1; done")
        rc, out = mount_share(c)
        check("the client mounts docs over NFSv3 and SMB3", rc == 0 and "mounted" in out, out[-300:])
        _, out = c.shell("client", "dd if=/dev/urandom of=/mnt/n3/a.bin bs=1M count=2 conv=fsync 2>/dev/null"
                                   " && sha256sum /mnt/n3/a.bin", timeout=120)
        want = {"a.bin": sha(out)}
        _, out = c.shell("client", "dd if=/dev/urandom of=/mnt/s/b.bin bs=1M count=2 conv=fsync 2>/dev/null"
                                   " && sha256sum /mnt/s/b.bin", timeout=120)
        want["b.bin"] = sha(out)
        got = read_back(c, want)
        check("files written over NFS and SMB read back over both", all(got[f] == (w, w) and w for f, w in want.items()),
              f"{got} vs {want}")

        # 4. Full reboot.
        t_reboot = time.monotonic()
        reboot(c, NODES)
        again = leases(c, ISUS)
        for isu in ISUS:
            check(f"{isu} kept its address across the reboot", again[isu] == first[isu], f"{first[isu]} -> {again[isu]}")
        check("after the reboot all three ISUs are adopted and connected",
              status_until(c, "head1", r"(?s)(isu: \S+ key \S+ adopted as \w+, connected.*){3}"))
        online = status_until(c, "head1", r"^storage: group g1: online$", timeout=180)
        check("after the reboot the group is assembled and mounted", online)
        print(f"cluster reboot to storage online: {time.monotonic() - t_reboot:.1f} s", flush=True)
        rc, out = mount_share(c) if online else (1, "group not online")
        got = read_back(c, want)
        check("after the reboot the client reads every byte back", all(got[f] == (w, w) for f, w in want.items()),
              f"{got} vs {want} ({out[-200:]})")

        # 5. Reboot with a member powered off: degraded after the wait.
        _, out = c.shell("head1", "opie status")
        t_degraded = time.monotonic()
        reboot(c, ["head1", "isu1", "isu3"])
        online = status_until(c, "head1", r"^storage: group g1: online; group g1 is degraded: \S+ is missing",
                              timeout=180 + MEMBER_WAIT)
        check(f"with one member off, the group starts degraded after the {MEMBER_WAIT} s member wait", online)
        print(f"reboot to degraded storage online: {time.monotonic() - t_degraded:.1f} s", flush=True)
        rc, out = c.shell("head1", "cat /proc/mdstat")
        check("md reports the group degraded", re.search(r"\[2/1\]|\[_U\]|\[U_\]", out), out)
        rc, out = mount_share(c) if online else (1, "group not online")
        got = read_back(c, want)
        check("degraded, the client still reads every byte back", all(got[f] == (w, w) for f, w in want.items()),
              f"{got} vs {want} ({out[-200:]})")
        c.shell("client", "umount /mnt/n3 /mnt/s; true")
    except (NodeFailed, ClusterError) as e:
        check("cluster ran without failure", False, str(e))
    finally:
        c.shutdown()
    check("shutdown leaves no process behind", not c.leftover_processes())
    print(f"end-to-end test wall time {time.monotonic() - t0:.1f} s")
    return summary()


if __name__ == "__main__":
    sys.exit(main())
