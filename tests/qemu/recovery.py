#!/usr/bin/env python3
"""QEMU recovery drills (issue 8): one head, two member ISUs and a spare.

  1. a member ISU's VM is killed: the head fails it out of the group at
     once (control-channel heartbeat, not nbd timeouts) and its status
     says the group is degraded; the data stays readable;
  2. the ISU comes back within the spare timeout: it is re-added through
     the write-intent bitmap and the group is whole again, data intact;
  3. the same ISU dies again and stays away past the (short, test) spare
     timeout: the spare takes its slot, md rebuilds onto it, and the group
     is whole again with every byte intact.

Prints PASS/FAIL per check, measured times, and `N passed, N failed`.
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
from harness import check, status_until, summary  # noqa: E402

NODES = ["head1", "isu1", "isu2", "isu3"]
SPARE_TIMEOUT = 20


def mdstat_until(c, pattern, timeout=120):
    deadline = time.monotonic() + timeout
    out = ""
    while time.monotonic() < deadline:
        _, out = c.shell("head1", "cat /proc/mdstat")
        if re.search(pattern, out):
            return out
        time.sleep(1)
    print(f"--- last /proc/mdstat ---\n{out}", flush=True)
    return None


def data_sha(c):
    _, out = c.shell("head1", "sync; echo 3 >/proc/sys/vm/drop_caches; sha256sum /srv/g1/data.bin", timeout=120)
    m = re.search(r"\b([0-9a-f]{64})\b", out)
    return m.group(1) if m else out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--image", default=os.path.join(REPO, "build", "qemu"))
    ap.add_argument("--logs", default=os.path.join(REPO, "build", "qemu-test-logs", "recovery"))
    a = ap.parse_args()
    t0 = time.monotonic()
    c = Cluster(heads=1, isus=3, image=a.image, data_disks=1, data_disk_mib=32, log_dir=a.logs,
                extra_cmdline={"head1": f"opie.spare_timeout={SPARE_TIMEOUT}"})
    try:
        c.start()
        for n in NODES:
            c.wait_for(n, r"opie supervisor started", timeout=180)
        check("three ISUs pending", status_until(c, "head1", r"(?s)(pending adoption.*){3}"))
        _, out = c.shell("head1", "opie status")
        serial = {f"isu{i}": f"MAC-5254007700{0x0a + i:02X}" for i in (1, 2, 3)}
        for isu, role in (("isu1", "member"), ("isu2", "member"), ("isu3", "spare")):
            rc, out = c.shell("head1", f"opie adopt {serial[isu]} --as {role}")
            check(f"adopt {isu} as {role}", rc == 0, out)
        check("group online", status_until(c, "head1", r"^storage: group g1: online$", 180))
        rc, out = c.shell("head1", "dd if=/dev/urandom of=/srv/g1/data.bin bs=1M count=8 conv=fsync 2>/dev/null"
                                   " && sha256sum /srv/g1/data.bin")
        want = re.search(r"\b([0-9a-f]{64})\b", out).group(1) if rc == 0 else None
        check("8 MiB written to the group", want, out)

        # 1. A member dies.
        t = time.monotonic()
        c.kill("isu2")
        degraded = status_until(c, "head1", rf"^storage: group g1: online; group g1 is degraded: {serial['isu2']} is missing", 60, every=0.5)
        t_degraded = time.monotonic() - t
        check("the head reports the group degraded", degraded)
        # Measured, not asserted: timing targets belong to benchmarks, this
        # machine is shared and noisy (the target is under 6 s).
        print(f"ISU killed to 'degraded' on the status page: {t_degraded:.1f} s", flush=True)
        check("md runs the group on one member", mdstat_until(c, r"\[2/1\]", 30))
        check("degraded, the data reads back intact", data_sha(c) == want)

        # 2. It comes back within the spare timeout: bitmap re-add.
        t = time.monotonic()
        c.restart("isu2")
        whole = mdstat_until(c, r"\[2/2\] \[UU\]", 120)
        check("the member is re-added and the group is whole again", whole)
        print(f"ISU restarted to group whole (boot + bitmap re-add): {time.monotonic() - t:.1f} s", flush=True)
        check("the head's status is back to online", status_until(c, "head1", r"^storage: group g1: online$", 30))
        check("after the re-add the data reads back intact", data_sha(c) == want)

        # 3. It dies again and stays away: the spare replaces it.
        t = time.monotonic()
        c.kill("isu2")
        check("degraded again", status_until(c, "head1", rf"group g1 is degraded: {serial['isu2']} is missing", 60))
        whole = mdstat_until(c, r"\[2/2\] \[UU\]", SPARE_TIMEOUT + 120)
        t_spare = time.monotonic() - t
        check(f"after the {SPARE_TIMEOUT} s spare timeout the spare takes the slot and the rebuild completes", whole)
        print(f"ISU killed to group whole on the spare: {t_spare:.1f} s (spare timeout {SPARE_TIMEOUT} s)", flush=True)
        check("not before the spare timeout", t_spare >= SPARE_TIMEOUT, f"{t_spare:.1f} s")
        _, out = c.shell("head1", "cat /proc/mdstat")
        check("the spare's export is in the array", re.search(r"nbd[2-9]\[", out), out)
        check("on the spare, the data reads back intact", data_sha(c) == want)
    except (NodeFailed, ClusterError) as e:
        check("cluster ran without failure", False, str(e))
    finally:
        c.shutdown()
    check("shutdown leaves no process behind", not c.leftover_processes())
    print(f"recovery test wall time {time.monotonic() - t0:.1f} s")
    return summary()


if __name__ == "__main__":
    sys.exit(main())
