#!/usr/bin/env python3
"""QEMU discovery and start-up test (issues 4 and 6): a head and three ISUs
boot with no static ISU addresses. Each ISU leases an address from the
head's pool, says hello on the control channel and shows as pending on the
head; nothing joins until the admin adopts it. Adopted, ISUs export their
disk over fenced NBD; the head attaches the two members, creates RAID5 +
LVM + ext4 and mounts it. After a full cluster reboot every ISU has the
same address (INIT-REBOOT), is adopted and connected again, the group is
assembled and the data written before the reboot reads back intact.

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

ISUS = ["isu1", "isu2", "isu3"]
POOL = (ipaddress.ip_address("10.77.0.100"), ipaddress.ip_address("10.77.0.199"))
results = []


def check(name, ok, detail=""):
    results.append(bool(ok))
    print(f"{'PASS' if ok else 'FAIL'} {name}" + (f": {detail}" if detail and not ok else ""), flush=True)
    return ok


def status_until(c, node, pattern, timeout=90):
    """Polls `opie status` on a node until `pattern` matches; the match or None."""
    deadline = time.monotonic() + timeout
    out = ""
    while time.monotonic() < deadline:
        rc, out = c.shell(node, "opie status", timeout=30)
        m = re.search(pattern, out, re.M)
        if rc == 0 and m:
            return m
        time.sleep(1)
    print(f"--- last `opie status` on {node} ---\n{out}", flush=True)
    return None


def leases(c):
    """Each ISU's leased address (or None)."""
    got = {}
    for isu in ISUS:
        m = status_until(c, isu, r"^lease: (10\.77\.0\.\d+)/24 from 10\.77\.0\.1$")
        got[isu] = m.group(1) if m else None
    return got


def wait_started(c, since):
    for name in ["head1"] + ISUS:
        c.wait_for(name, r"opie supervisor started: role=\S+ hostname=" + name, timeout=180, since=since[name])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--image", default=os.path.join(REPO, "build", "qemu"))
    ap.add_argument("--logs", default=os.path.join(REPO, "build", "qemu-test-logs", "discovery"))
    a = ap.parse_args()
    t0 = time.monotonic()
    c = Cluster(heads=1, isus=len(ISUS), image=a.image, data_disks=1, data_disk_mib=32,
                log_dir=a.logs, leased_isus=True)
    try:
        c.start()
        wait_started(c, {n: 0 for n in ["head1"] + ISUS})
        first = leases(c)
        for isu, addr in first.items():
            check(f"{isu} leased an address from the pool", addr and POOL[0] <= ipaddress.ip_address(addr) <= POOL[1],
                  f"got {addr}")
        check("every ISU has its own address", len(set(first.values())) == len(ISUS), f"{first}")
        rc, out = c.shell("isu1", "ip -4 addr show dev eth0")
        check("isu1's leased address is on eth0", first["isu1"] and f"inet {first['isu1']}/24" in out, out)

        pending = status_until(c, "head1", r"(?s)(isu: \S+ key \S+ pending adoption.*){3}")
        check("head lists three ISUs pending adoption", pending)
        _, head_status = c.shell("head1", "opie status")
        serials = re.findall(r"^isu: (\S+) key \S+ pending adoption", head_status, re.M)
        rc, out = c.shell("isu1", "opie status")
        check("a pending ISU is not connected to storage", "head link: not connected" in out and "not adopted" in out, out)

        for n, serial in enumerate(sorted(serials)):
            role = "spare" if n == len(serials) - 1 else "member"
            rc, out = c.shell("head1", f"opie adopt {serial} --as {role}")
            check(f"adopt {serial} as {role}", rc == 0 and f"adopted {serial}" in out, out)
        joined = status_until(c, "head1", r"(?s)(isu: \S+ key \S+ adopted as \w+, connected.*){3}")
        check("all three adopted ISUs connect to the head", joined)
        # Adopted, each ISU exports its data disk over NBD, fenced with the
        # key it shares with its head, and reports so.
        for isu in ISUS:
            m = status_until(c, isu, r"^export: normal, exports disk0 32 MiB$")
            check(f"{isu} exports its data disk once adopted", m)
        exported = status_until(c, "head1", r"(?s)(isu: \S+ key \S+ adopted as \w+, connected, normal, exports disk0 32 MiB.*){3}")
        check("the head sees every ISU's export", exported)
        # Fencing is on: an attach without a signed epoch is refused.
        rc, out = c.shell("head1", f"modprobe nbd; opie nbd-attach --server {first['isu1']}:10809 "
                                   "--export disk0 --device /dev/nbd0 2>&1")
        check("an unfenced attach to an ISU's export is refused", rc != 0 and "refused" in out.lower(), out)

        # With two members adopted and exporting, the head attaches them
        # (fenced), creates RAID5 + LVM + ext4 and mounts it.
        online = status_until(c, "head1", r"^storage: group g1: online$", timeout=180)
        check("the head brings its RAID5 group online over the members' exports", online)
        rc, out = c.shell("head1", "grep ' /srv/g1 ' /proc/mounts && cat /proc/mdstat")
        check("the group's filesystem is mounted on the head", rc == 0 and "ext4" in out and "raid5" in out, out)
        rc, out = c.shell("head1", "dd if=/dev/urandom of=/srv/g1/probe bs=1M count=4 2>/dev/null && sync && "
                                   "sha256sum /srv/g1/probe")
        written = out.split()[0] if rc == 0 and out.strip() else None
        check("a file is written to the group", written, out)

        # Full cluster reboot: same disks, same MACs.
        since = {n: c.mark(n) for n in ["head1"] + ISUS}
        t_reboot = time.monotonic()
        for n in ["head1"] + ISUS:
            c.stop(n)
        for n in ["head1"] + ISUS:
            c.restart(n)
        wait_started(c, since)
        again = leases(c)
        for isu in ISUS:
            check(f"{isu} kept its address {first[isu]} across the reboot", again[isu] == first[isu], f"now {again[isu]}")
        rejoined = status_until(c, "head1", r"(?s)(isu: \S+ key \S+ adopted as \w+, connected.*){3}")
        check("after the reboot all three are adopted and connected again", rejoined)
        print(f"cluster reboot to all ISUs reconnected: {time.monotonic() - t_reboot:.1f} s", flush=True)
        online = status_until(c, "head1", r"^storage: group g1: online$", timeout=180)
        check("after the reboot the group is assembled and mounted again", online)
        print(f"cluster reboot to storage online: {time.monotonic() - t_reboot:.1f} s", flush=True)
        rc, out = c.shell("head1", "sha256sum /srv/g1/probe")
        check("the file written before the reboot reads back intact", written and rc == 0 and out.split()[0] == written, out)
    except (NodeFailed, ClusterError) as e:
        check("cluster ran without failure", False, str(e))
    finally:
        c.shutdown()
    check("shutdown leaves no process behind", not c.leftover_processes())
    print(f"discovery test wall time {time.monotonic() - t0:.1f} s")
    passed = sum(results)
    print(f"{passed} passed, {len(results) - passed} failed")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
