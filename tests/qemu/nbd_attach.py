#!/usr/bin/env python3
"""QEMU test of the head-side NBD attach and epoch fencing (issue 5).

One head and one ISU (2 VMs). The ISU serves its data disk /dev/vdb with
`opie nbd-serve --fence-key-file --state-dir`; the head attaches it with
`opie nbd-attach` (userspace handshake with a signed epoch claim, socket
handed to the kernel nbd driver by netlink). Checks, each printed as
PASS/FAIL, then `N passed, N failed` and the wall time:

  - attach at epoch 5 gives /dev/nbd0 of the disk's size; dd writes 8 MiB,
    reading back through /dev/nbd0 and on the ISU's /dev/vdb gives the same
    sha256;
  - the ISU VM frozen (QMP stop: no packets, no resets): a read and a
    write on /dev/nbd0 fail within request timeout + dead timeout (the
    seconds are measured in the guest and printed);
  - ISU resumed: detach + attach again at epoch 5 and the data is intact;
  - the ISU's nbd-serve killed and restarted (VM up): I/O fails, reattach
    works, and a stale epoch 4 is refused from the persisted grant;
  - fencing: a second attach at epoch 6 (/dev/nbd1, another head id)
    makes the epoch-5 device's writes fail; epoch 6 reads the data intact
    and writes; epoch 5 cannot attach again (NBD_REP_ERR_POLICY, "stale
    epoch 5"); the ISU log shows the grant and the dropped connection;
  - the ISU VM killed at the end: a read on /dev/nbd1 fails within the
    same bound.

A kernel panic or an early QEMU exit fails the run at once with the log.

    tests/qemu/nbd_attach.py [--image build/qemu] [--logs DIR]
"""

import argparse
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "qemu"))
from opie_cluster import Cluster, ClusterError  # noqa: E402

DISK_MIB = 64
TIMEOUT = 3  # --timeout: seconds before a request without reply kills the connection
DEAD = 2  # --dead-timeout: seconds queued I/O waits for a replacement connection
ISU_ADDR = "10.77.0.11"
KEY_HEX = os.urandom(32).hex()

results = []


def check(name, ok, detail=""):
    results.append(bool(ok))
    print(f"{'PASS' if ok else 'FAIL'} {name}" + (f": {detail}" if detail and not ok else ""), flush=True)
    return ok


def finish(t0):
    passed = sum(results)
    print(f"{passed} passed, {len(results) - passed} failed ({time.monotonic() - t0:.0f} s wall)", flush=True)
    return 0 if results and all(results) else 1


def sh(c, node, cmd, timeout=60):
    return c.shell(node, cmd, timeout=timeout)


def attach_cmd(device, epoch, head_id):
    return (f"opie nbd-attach --server {ISU_ADDR}:10809 --export disk --epoch {epoch} "
            f"--fence-key-file /tmp/fence.key --head-id {head_id} --device {device} "
            f"--timeout {TIMEOUT} --dead-timeout {DEAD}")


def timed(c, node, cmd, timeout=120):
    """Runs cmd in the guest; returns (exit status, seconds by the guest's
    /proc/uptime, output)."""
    rc, out = sh(c, node, f"a=$(cut -d' ' -f1 /proc/uptime); {cmd}; r=$?; "
                          f"b=$(cut -d' ' -f1 /proc/uptime); echo \"@@T $r $a $b\"", timeout=timeout)
    m = re.search(r"@@T (\d+) ([\d.]+) ([\d.]+)", out)
    if not m:
        return -1, -1.0, out
    return int(m.group(1)), float(m.group(3)) - float(m.group(2)), out


def start_server(c):
    sh(c, "isu1", "opie nbd-serve --listen 0.0.0.0:10809 --export disk=/dev/vdb "
                  "--fence-key-file /tmp/fence.key --state-dir /tmp/fence-state "
                  ">/tmp/nbd.out 2>/tmp/nbd.err & echo $! > /tmp/nbd.pid")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        rc, out = sh(c, "isu1", "cat /tmp/nbd.out")
        if "listening on" in out:
            return True
        time.sleep(0.5)
    return False


def main():
    ap = argparse.ArgumentParser(description="QEMU test: head-side NBD attach, dead ISU, reconnect, fencing")
    ap.add_argument("--image", default=os.path.join(REPO, "build", "qemu"))
    ap.add_argument("--logs", default=os.path.join(REPO, "build", "qemu-nbd-attach-logs"))
    ap.add_argument("--boot-timeout", type=float, default=120)
    a = ap.parse_args()
    t0 = time.monotonic()
    try:
        c = Cluster(heads=1, isus=1, image=a.image, log_dir=a.logs, data_disk_mib=DISK_MIB)
    except ClusterError as e:
        check("cluster set-up", False, str(e))
        return finish(t0)
    try:
        with c:
            c.start()
            for name in ("head1", "isu1"):
                c.wait_for(name, r"opie supervisor started", timeout=a.boot_timeout)
            print(f"booted in {time.monotonic() - t0:.1f} s", flush=True)
            run(c)
    except ClusterError as e:
        check("cluster ran to the end", False, str(e))
    return finish(t0)


def run(c):
    size = DISK_MIB * 1024 * 1024
    for node in ("head1", "isu1"):
        sh(c, node, f"echo {KEY_HEX} > /tmp/fence.key && mkdir -p /tmp/fence-state")
    if not check("isu1: opie nbd-serve with a fencing key is listening", start_server(c),
                 sh(c, "isu1", "cat /tmp/nbd.out /tmp/nbd.err")[1]):
        return
    rc, out = sh(c, "head1", "modprobe nbd && ls /dev/nbd0 /dev/nbd1")
    if not check("head1: nbd module loaded", rc == 0, out):
        return

    # --- attach, write, read back ---------------------------------------
    rc, out = sh(c, "head1", attach_cmd("/dev/nbd0", 5, "headA"))
    check("head1: nbd-attach at epoch 5 to /dev/nbd0", rc == 0 and "attached /dev/nbd0" in out, out)
    rc, out = sh(c, "head1", "cat /sys/block/nbd0/size")
    check(f"/dev/nbd0 has the data disk's size ({size} bytes)", rc == 0 and out.strip() == str(size // 512), out)
    rc, out = sh(c, "head1", "dd if=/dev/urandom of=/tmp/pattern bs=1M count=8 2>/dev/null && "
                             "dd if=/tmp/pattern of=/dev/nbd0 bs=1M conv=fsync 2>&1 && sha256sum /tmp/pattern")
    want = out.split()[-2] if rc == 0 else None
    check("dd writes 8 MiB to /dev/nbd0", rc == 0, out)
    rc, out = sh(c, "head1", "echo 3 > /proc/sys/vm/drop_caches; dd if=/dev/nbd0 bs=1M count=8 iflag=direct "
                             "2>/dev/null | sha256sum")
    check("reading /dev/nbd0 back gives the same sha256", rc == 0 and want and want in out, f"{out} vs {want}")
    rc, out = sh(c, "isu1", "dd if=/dev/vdb bs=1M count=8 2>/dev/null | sha256sum")
    check("the ISU's /dev/vdb holds the same bytes", rc == 0 and want and want in out, f"{out} vs {want}")

    # --- a hung ISU fails I/O in seconds ---------------------------------
    # The bound says "fails in seconds instead of hanging forever"; it is
    # wide because this machine is shared and TCG slows under load (the
    # measured times are printed; timing targets are for benchmarks).
    bound = 3 * (TIMEOUT + DEAD) + 5
    c.pause("isu1")
    rc, secs, out = timed(c, "head1", "dd if=/dev/nbd0 of=/dev/null bs=4k count=1 skip=4000 iflag=direct 2>&1")
    print(f"  frozen ISU: read failed after {secs:.1f} s (timeout {TIMEOUT} s + dead timeout {DEAD} s)", flush=True)
    check(f"frozen ISU: a read on /dev/nbd0 fails within {bound} s", rc not in (0, -1) and 0 < secs <= bound,
          f"exit {rc} after {secs:.1f} s: {out}")
    rc, secs, out = timed(c, "head1", "dd if=/dev/zero of=/dev/nbd0 bs=4k count=1 seek=4001 oflag=direct 2>&1")
    print(f"  frozen ISU: write on the dead device failed after {secs:.1f} s", flush=True)
    check(f"frozen ISU: a write on /dev/nbd0 fails within {bound} s", rc not in (0, -1) and 0 < secs <= bound,
          f"exit {rc} after {secs:.1f} s: {out}")
    # The kernel's own account: request timeout, dead connection, then EIO
    # for the read (sector 32000 = 4 KiB block 4000) after the dead timeout.
    rc, out = sh(c, "head1", "dmesg | grep -E 'nbd0: (Connection timed out|Dead connection)|sector 32000 ' | head -4")
    print("  kernel: " + out.replace("\n", "\n  kernel: "), flush=True)
    c.resume("isu1")

    # --- reconnect: detach, attach again ---------------------------------
    rc, out = sh(c, "head1", "opie nbd-detach --device /dev/nbd0")
    check("head1: nbd-detach /dev/nbd0 after the failure", rc == 0, out)
    rc, out = reattach(c, "/dev/nbd0", 5, "headA")
    check("ISU resumed: nbd-attach at epoch 5 again", rc == 0 and "attached /dev/nbd0" in out, out)
    rc, out = sh(c, "head1", "echo 3 > /proc/sys/vm/drop_caches; dd if=/dev/nbd0 bs=1M count=8 iflag=direct "
                             "2>/dev/null | sha256sum")
    check("after reconnecting the data is intact", rc == 0 and want and want in out, f"{out} vs {want}")

    # --- server process restart: the grant is persisted ------------------
    sh(c, "isu1", "kill $(cat /tmp/nbd.pid)")
    rc, secs, out = timed(c, "head1", "dd if=/dev/nbd0 of=/dev/null bs=4k count=1 skip=5000 iflag=direct 2>&1")
    print(f"  killed server: read failed after {secs:.1f} s", flush=True)
    check(f"ISU server killed: a read on /dev/nbd0 fails within {3 * DEAD + 5} s",
          rc not in (0, -1) and 0 < secs <= 3 * DEAD + 5, f"exit {rc} after {secs:.1f} s: {out}")
    check("isu1: nbd-serve restarted", start_server(c), sh(c, "isu1", "cat /tmp/nbd.out /tmp/nbd.err")[1])
    sh(c, "head1", "opie nbd-detach --device /dev/nbd0")
    rc, out = sh(c, "head1", attach_cmd("/dev/nbd0", 4, "headA"))
    check("after the server restart a stale epoch 4 is refused", rc != 0 and "stale epoch 4" in out, out)
    rc, out = reattach(c, "/dev/nbd0", 5, "headA")
    check("after the server restart epoch 5 (the holder) attaches", rc == 0, out)

    # --- fencing: epoch 6 takes over --------------------------------------
    rc, out = sh(c, "head1", attach_cmd("/dev/nbd1", 6, "headB"))
    check("a second attach at epoch 6 (/dev/nbd1, head id headB)", rc == 0 and "attached /dev/nbd1" in out, out)
    rc, secs, out = timed(c, "head1", "dd if=/dev/zero of=/dev/nbd0 bs=4k count=1 seek=100 oflag=direct 2>&1")
    print(f"  fenced epoch 5: write failed after {secs:.1f} s", flush=True)
    check("after the takeover a write through epoch 5 (/dev/nbd0) fails", rc not in (0, -1), f"exit {rc}: {out}")
    rc, out = sh(c, "head1", "echo 3 > /proc/sys/vm/drop_caches; dd if=/dev/nbd1 bs=1M count=8 iflag=direct "
                             "2>/dev/null | sha256sum")
    check("epoch 6 reads the data intact (the fenced write did not land)", rc == 0 and want and want in out,
          f"{out} vs {want}")
    rc, out = sh(c, "head1", "dd if=/dev/urandom of=/tmp/p2 bs=4k count=16 2>/dev/null && "
                             "dd if=/tmp/p2 of=/dev/nbd1 bs=4k seek=1000 conv=fsync 2>/dev/null && "
                             "echo 3 > /proc/sys/vm/drop_caches && "
                             "dd if=/dev/nbd1 bs=4k skip=1000 count=16 iflag=direct 2>/dev/null | sha256sum && "
                             "sha256sum /tmp/p2")
    sums = re.findall(r"\b[0-9a-f]{64}\b", out)
    check("epoch 6 writes and reads back", rc == 0 and len(sums) == 2 and sums[0] == sums[1], out)
    sh(c, "head1", "opie nbd-detach --device /dev/nbd0")
    rc, out = sh(c, "head1", attach_cmd("/dev/nbd0", 5, "headA"))
    check("epoch 5 can no longer attach (policy: stale epoch 5)",
          rc != 0 and "policy" in out and "stale epoch 5" in out, out)
    rc, out = sh(c, "isu1", "logread | grep opie-nbd | tail -20")
    check("ISU log: epoch 6 granted and the epoch-5 connection dropped",
          'epoch 6 granted to "headB"' in out and "dropping a connection of epoch 5" in out, out)

    # --- a killed ISU VM (power cut: no FIN, no RST) ----------------------
    c.kill("isu1")
    rc, secs, out = timed(c, "head1", "dd if=/dev/nbd1 of=/dev/null bs=4k count=1 skip=6000 iflag=direct 2>&1")
    print(f"  killed ISU VM: read failed after {secs:.1f} s (timeout {TIMEOUT} s + dead timeout {DEAD} s)", flush=True)
    check(f"killed ISU VM: a read on /dev/nbd1 fails within {bound} s", rc not in (0, -1) and 0 < secs <= bound,
          f"exit {rc} after {secs:.1f} s: {out}")
    rc, out = sh(c, "head1", "opie nbd-detach --device /dev/nbd1")
    check("head1: nbd-detach /dev/nbd1", rc == 0, out)


def reattach(c, device, epoch, head_id):
    """Attach, retrying briefly while the kernel still tears the old
    connection down (EBUSY right after a disconnect)."""
    deadline = time.monotonic() + 15
    while True:
        rc, out = sh(c, "head1", attach_cmd(device, epoch, head_id))
        if rc == 0 or "busy" not in out.lower() or time.monotonic() > deadline:
            return rc, out
        time.sleep(0.5)


if __name__ == "__main__":
    sys.exit(main())
