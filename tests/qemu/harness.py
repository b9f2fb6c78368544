"""What the QEMU end-to-end tests share: PASS/FAIL checks with the closing
`N passed, N failed` line, and polling a node's `opie status`."""

import re
import time

results = []


def check(name, ok, detail=""):
    """Records and prints one check; returns `ok` so callers can branch."""
    results.append(bool(ok))
    print(f"{'PASS' if ok else 'FAIL'} {name}" + (f": {detail}" if detail and not ok else ""), flush=True)
    return ok


def summary():
    """Prints the closing line; the process exit code (0: all passed)."""
    passed = sum(results)
    print(f"{passed} passed, {len(results) - passed} failed")
    return 0 if results and passed == len(results) else 1


def status_until(c, node, pattern, timeout=90, every=1.0):
    """Polls `opie status` on `node` until `pattern` matches a line; the
    match, or None (after printing the last status) at the timeout."""
    deadline = time.monotonic() + timeout
    out = ""
    while time.monotonic() < deadline:
        rc, out = c.shell(node, "opie status", timeout=30)
        m = re.search(pattern, out, re.M)
        if rc == 0 and m:
            return m
        time.sleep(every)
    print(f"--- last `opie status` on {node} ---\n{out}", flush=True)
    return None
