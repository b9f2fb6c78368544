"""Boot Opie clusters under QEMU TCG on private vde switches (DESIGN §14).

Library behind `qemu/cluster` and the QEMU end-to-end tests:

    from opie_cluster import Cluster
    with Cluster(heads=1, isus=2, image="build/qemu") as c:
        c.start()
        c.wait_for("isu1", r"opie supervisor started")
        status, out = c.shell("head1", "opie status")

Every node: 1 vCPU, `mem` MiB, a blank raw state disk /dev/vda, kernel
command line `opie.role=... opie.hostname=... opie.state=/dev/vda
opie.storage_addr=10.77.0.X/24` (heads .1, .2; ISUs .11, .12, ...).
ISUs get `data_disks` raw data disks (/dev/vdb...). Heads: eth0 on the
storage switch, eth1 on the LAN switch; ISUs: eth0 on the storage switch.
The active head (head1) has a third NIC on QEMU's user network with
restrict=on (no route anywhere) that only forwards 127.0.0.1:web_port on the
host to its port 80. The optional client VM sits on the LAN (eth0,
192.168.77.100/24) and runs shells instead of the supervisor.

Serial ports: ttyS0 (admin console, `opie console`) and ttyS1 (root shell,
test image only) of each node are unix sockets in the run directory; all
their output goes to NAME.console.log and NAME.shell.log there.

A watcher thread reads every console log for "Kernel panic" and polls every
process; the first failure is raised by whatever call is waiting (and by
`check()`), with the node's log tail, at once.
"""

import ctypes
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_IMAGE = os.path.join(REPO, "build", "qemu")
STORAGE_NET = "10.77.0"
LAN_NET = "192.168.77"
HOSTFWD_MAC = "52:54:00:fe:00:01"
PANIC = re.compile(rb"Kernel panic")
SOCK_MAX = 100  # AF_UNIX paths are limited to 107 bytes


class ClusterError(Exception):
    """The cluster could not be started or used."""


class NodeFailed(ClusterError):
    """A node panicked or its QEMU (or a switch) exited unexpectedly."""


def _die_with_parent():
    """preexec_fn: SIGKILL the child if the launcher dies (no orphans)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    os.setpgid(0, 0)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path, lines=40):
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - 64 * 1024))
            data = f.read().decode(errors="replace").replace("\r", "")
    except OSError:
        return f"({path} unreadable)"
    return "\n".join(data.splitlines()[-lines:])


class Node:
    def __init__(self, name, role, index, storage_ip=None):
        self.name = name
        self.role = role  # head, isu, client
        self.index = index
        self.storage_ip = storage_ip
        self.proc = None
        self.expected_down = False
        self.console_log = None
        self.shell_log = None
        self.qemu_log = None
        self.ttyS0 = None
        self.ttyS1 = None
        self.qmp = None
        self.disks = []
        self.cmdline = ""
        self._shell = None  # connected ttyS1 socket
        self._shell_buf = b""
        self._shell_lock = threading.Lock()
        self._scan_pos = 0
        self._scan_tail = b""


class Cluster:
    def __init__(self, heads=1, isus=2, client=False, image=None, run_dir=None, mem=512,
                 data_disks=1, data_disk_mib=128, state_disk_mib=16, web_port=None,
                 log_dir=None, extra_cmdline=None, leased_isus=False, head_data_disks=0):
        if heads < 0 or isus < 0 or heads + isus + bool(client) == 0:
            raise ClusterError("a cluster needs at least one node")
        if heads > 2 or isus > 88:
            raise ClusterError("at most 2 heads and 88 ISUs (storage addresses .1-.2, .11-.98)")
        if not 0 <= data_disks <= 23:
            raise ClusterError("0 to 23 data disks per ISU (PCI slots 0x9-0x1f)")
        self.image = os.path.abspath(image or DEFAULT_IMAGE)
        self.kernel = os.path.join(self.image, "vmlinuz")
        self.initrd = os.path.join(self.image, "initramfs.img")
        for f in (self.kernel, self.initrd):
            if not os.path.isfile(f):
                raise ClusterError(f"{f} missing: build the image first (make qemu-image)")
        self.own_run_dir = run_dir is None
        self.run_dir = os.path.abspath(run_dir) if run_dir else tempfile.mkdtemp(prefix="opie-cluster-")
        self.log_dir = log_dir
        self.mem = mem
        self.data_disks = data_disks
        self.data_disk_mib = data_disk_mib
        self.state_disk_mib = state_disk_mib
        self.web_port = web_port if web_port is not None else free_port()
        self.extra_cmdline = extra_cmdline or {}
        # ISUs without opie.storage_addr lease their address from the head.
        self.leased_isus = leased_isus
        # Local data disks on heads (benchmarks compare local md with md
        # over NBD in the same VM).
        self.head_data_disks = head_data_disks
        self.nodes = {}
        for i in range(heads):
            n = Node(f"head{i + 1}", "head", i, f"{STORAGE_NET}.{i + 1}")
            self.nodes[n.name] = n
        for i in range(isus):
            n = Node(f"isu{i + 1}", "isu", i, f"{STORAGE_NET}.{11 + i}")
            self.nodes[n.name] = n
        if client:
            self.nodes["client"] = Node("client", "client", 0)
        self.switches = {}  # name -> Popen
        self.sock_dir = None
        self._failure = None
        self._stop = threading.Event()
        self._watcher = None
        self._started = False
        self.t_start = None

    # ---- life cycle -------------------------------------------------------

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.shutdown()
        return False

    def start(self):
        """Create disks, start the switches and every node (all at once)."""
        if self._started:
            raise ClusterError("already started")
        self._started = True
        os.makedirs(self.run_dir, exist_ok=True)
        self._clean_run_dir()  # leftovers of a launcher that was killed
        if len(os.path.join(self.run_dir, "isu88.ttyS1.sock")) <= SOCK_MAX:
            self.sock_dir = self.run_dir
        else:
            self.sock_dir = tempfile.mkdtemp(prefix="opie-sock-")
        try:
            for net in ("storage", "lan"):
                self._start_switch(net)
            self.t_start = time.monotonic()
            for node in self.nodes.values():
                self._start_node(node)
        except BaseException:
            self.shutdown()
            raise
        self._write_state()
        self._watcher = threading.Thread(target=self._watch, name="opie-cluster-watch", daemon=True)
        self._watcher.start()
        return self

    def _start_switch(self, net):
        sock = os.path.join(self.sock_dir, f"{net}.vde")
        log = open(os.path.join(self.run_dir, f"switch-{net}.log"), "wb")
        # stdin stays an open pipe: vde_switch runs in the foreground as our
        # child and exits when the launcher goes away.
        p = subprocess.Popen(["vde_switch", "--sock", sock, "--numports", "64"],
                             stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT,
                             preexec_fn=_die_with_parent)
        log.close()
        self.switches[net] = p
        deadline = time.monotonic() + 10
        while not os.path.exists(os.path.join(sock, "ctl")):
            if p.poll() is not None:
                raise ClusterError(f"vde_switch for {net} exited: {tail(os.path.join(self.run_dir, f'switch-{net}.log'))}")
            if time.monotonic() > deadline:
                raise ClusterError(f"vde_switch for {net} did not create {sock}")
            time.sleep(0.05)

    def _disk(self, path, mib, fresh=True):
        if fresh or not os.path.exists(path):
            with open(path, "wb") as f:
                f.truncate(mib * 1024 * 1024)
        return path

    def _start_node(self, node, fresh=True):
        """Start a node's QEMU. `fresh` creates its disks and logs; a
        restart keeps both (a reboot with the same hardware)."""
        r = self.run_dir
        node.console_log = os.path.join(r, f"{node.name}.console.log")
        node.shell_log = os.path.join(r, f"{node.name}.shell.log")
        node.qemu_log = os.path.join(r, f"{node.name}.qemu.log")
        node.ttyS0 = os.path.join(self.sock_dir, f"{node.name}.ttyS0.sock")
        node.ttyS1 = os.path.join(self.sock_dir, f"{node.name}.ttyS1.sock")
        node.qmp = os.path.join(self.sock_dir, f"{node.name}.qmp")
        if fresh:
            for f in (node.console_log, node.shell_log):
                open(f, "wb").close()
        if node.role == "client":
            cmd = ["console=ttyS0", "rdinit=/usr/libexec/opie-test/client-init",
                   f"opietest.ip=eth0:{LAN_NET}.100/24"]
        else:
            cmd = ["console=ttyS0", f"opie.role={node.role}", f"opie.hostname={node.name}", "opie.state=/dev/vda"]
            if not (node.role == "isu" and self.leased_isus):
                cmd.append(f"opie.storage_addr={node.storage_ip}/24")
            if node.name == "head1":
                cmd.append(f"opietest.hostfwd_mac={HOSTFWD_MAC}")
        extra = self.extra_cmdline.get(node.name, "")
        node.cmdline = " ".join(cmd + ([extra] if extra else []))
        argv = [
            "qemu-system-x86_64", "-name", node.name, "-nodefaults", "-display", "none",
            "-machine", "pc", "-accel", "tcg", "-m", str(self.mem), "-smp", "1", "-no-reboot",
            "-kernel", self.kernel, "-initrd", self.initrd, "-append", node.cmdline,
            "-chardev", f"socket,id=ser0,path={node.ttyS0},server=on,wait=off,logfile={node.console_log},logappend=on",
            "-serial", "chardev:ser0",
            "-chardev", f"socket,id=ser1,path={node.ttyS1},server=on,wait=off,logfile={node.shell_log},logappend=on",
            "-serial", "chardev:ser1",
            "-qmp", f"unix:{node.qmp},server=on,wait=off",
        ]
        # Disks: PCI slots 0x8.. in order, so the state disk is /dev/vda.
        disks = []
        if node.role != "client":
            disks.append(self._disk(os.path.join(r, f"{node.name}-state.img"), self.state_disk_mib, fresh))
        local_disks = {"isu": self.data_disks, "head": self.head_data_disks}.get(node.role, 0)
        if local_disks:
            for d in range(local_disks):
                disks.append(self._disk(os.path.join(r, f"{node.name}-data{d}.img"), self.data_disk_mib, fresh))
        node.disks = disks
        for i, path in enumerate(disks):
            argv += ["-drive", f"if=none,id=d{i},file={path},format=raw,cache=unsafe",
                     "-device", f"virtio-blk-pci,drive=d{i},addr={0x8 + i:#x}"]
        # NICs: PCI slots 0x4.. in order, so names are eth0, eth1, eth2.
        last = node.storage_ip.rsplit(".", 1)[1] if node.storage_ip else "100"
        nics = []
        if node.role in ("head", "isu"):
            nics.append(("storage", f"52:54:00:77:00:{int(last):02x}"))
        if node.role in ("head", "client"):
            nics.append(("lan", f"52:54:00:78:00:{int(last):02x}"))
        for i, (net, mac) in enumerate(nics):
            sock = os.path.join(self.sock_dir, f"{net}.vde")
            argv += ["-netdev", f"vde,id=n{i},sock={sock}",
                     "-device", f"virtio-net-pci,netdev=n{i},mac={mac},addr={0x4 + i:#x}"]
        if node.name == "head1":
            argv += ["-netdev", f"user,id=web,restrict=on,hostfwd=tcp:127.0.0.1:{self.web_port}-:80",
                     "-device", f"virtio-net-pci,netdev=web,mac={HOSTFWD_MAC},addr={0x4 + len(nics):#x}"]
        log = open(node.qemu_log, "wb")
        node.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                     preexec_fn=_die_with_parent)
        log.close()

    def _write_state(self):
        state = {
            "pid": os.getpid(), "run_dir": self.run_dir, "sock_dir": self.sock_dir,
            "web_port": self.web_port if "head1" in self.nodes else None,
            "nodes": {n.name: {"role": n.role, "storage_ip": n.storage_ip, "ttyS0": n.ttyS0,
                               "ttyS1": n.ttyS1, "console_log": n.console_log, "shell_log": n.shell_log,
                               "qmp": n.qmp, "pid": n.proc.pid, "cmdline": n.cmdline}
                      for n in self.nodes.values()},
        }
        with open(os.path.join(self.run_dir, "cluster.json.tmp"), "w") as f:
            json.dump(state, f, indent=1)
        os.rename(os.path.join(self.run_dir, "cluster.json.tmp"), os.path.join(self.run_dir, "cluster.json"))

    def shutdown(self):
        """Stop every process started here, wait for them, remove temp files."""
        self._stop.set()
        for node in self.nodes.values():
            node.expected_down = True
            if node._shell:
                node._shell.close()
                node._shell = None
        procs = [n.proc for n in self.nodes.values() if n.proc] + list(self.switches.values())
        for p in procs:
            if p.poll() is None:
                p.terminate()
        deadline = time.monotonic() + 5
        for p in procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for p in self.switches.values():
            if p.stdin:
                p.stdin.close()
        if self._watcher and self._watcher is not threading.current_thread():
            self._watcher.join(2)
        if self.log_dir and os.path.isdir(self.run_dir):
            os.makedirs(self.log_dir, exist_ok=True)
            for f in os.listdir(self.run_dir):
                if f.endswith(".log"):
                    shutil.copy2(os.path.join(self.run_dir, f), self.log_dir)
        if self.sock_dir and self.sock_dir != self.run_dir:
            shutil.rmtree(self.sock_dir, ignore_errors=True)
        if os.path.isdir(self.run_dir):
            if self.own_run_dir:
                shutil.rmtree(self.run_dir, ignore_errors=True)
            else:
                self._clean_run_dir()

    def _clean_run_dir(self):
        """Remove disks, sockets and state of a given run directory (logs stay)."""
        for f in os.listdir(self.run_dir):
            p = os.path.join(self.run_dir, f)
            if f.endswith((".img", ".sock", ".qmp", ".vde", ".json", ".tmp")):
                if os.path.isdir(p) and not os.path.islink(p):
                    shutil.rmtree(p)
                else:
                    os.unlink(p)

    def leftover_processes(self):
        """[(pid, cmdline)] of live processes that mention this run's files."""
        marks = {d + "/" for d in (self.run_dir, self.sock_dir) if d}
        found = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if any(m in cmd for m in marks) and int(pid) != os.getpid():
                found.append((int(pid), cmd.strip()))
        return found

    # ---- failure watching -------------------------------------------------

    def _fail(self, node, why):
        if self._failure is None:
            log = node.console_log if node else None
            text = f"{node.name if node else 'cluster'}: {why}"
            if node:
                text += f"\n--- last lines of {log} ---\n{tail(log)}"
                if os.path.getsize(node.qemu_log) if os.path.exists(node.qemu_log) else 0:
                    text += f"\n--- {node.qemu_log} ---\n{tail(node.qemu_log, 10)}"
            self._failure = NodeFailed(text)

    def _scan(self):
        for node in self.nodes.values():
            if node.expected_down or not node.proc:
                continue
            rc = node.proc.poll()
            if rc is not None and not node.expected_down:
                self._fail(node, f"QEMU exited early (status {rc})")
                return
            try:
                with open(node.console_log, "rb") as f:
                    f.seek(node._scan_pos)
                    data = f.read()
            except OSError:
                continue
            node._scan_pos += len(data)
            chunk = node._scan_tail + data
            if PANIC.search(chunk):
                time.sleep(0.5)  # let the panic message finish
                self._fail(node, "Kernel panic")
                return
            node._scan_tail = chunk[-64:]
        for net, p in self.switches.items():
            if p.poll() is not None:
                self._fail(None, f"vde_switch for {net} exited (status {p.returncode})")
                return

    def _watch(self):
        while not self._stop.is_set() and self._failure is None:
            self._scan()
            self._stop.wait(0.2)

    def check(self):
        """Raise the first failure seen (panic, early exit), if any."""
        if self._failure is None and not self._stop.is_set():
            self._scan()
        if self._failure is not None:
            raise self._failure

    @property
    def failed(self):
        return self._failure

    # ---- consoles ---------------------------------------------------------

    def node(self, name):
        try:
            return self.nodes[name]
        except KeyError:
            raise ClusterError(f"no node {name!r} (have {', '.join(self.nodes)})") from None

    def console_text(self, name):
        with open(self.node(name).console_log, "rb") as f:
            return f.read().decode(errors="replace").replace("\r", "")

    def mark(self, name, port="console"):
        """Current size of a node's log: pass as `since` to wait for new output."""
        n = self.node(name)
        return os.path.getsize(n.console_log if port == "console" else n.shell_log)

    def wait_for(self, name, pattern, timeout=120, since=0, port="console"):
        """Wait until regex `pattern` appears in the node's console (or
        shell) output after byte offset `since`; return the match. Raises
        NodeFailed at once if any node fails, ClusterError on timeout."""
        n = self.node(name)
        path = n.console_log if port == "console" else n.shell_log
        rx = re.compile(pattern.encode() if isinstance(pattern, str) else pattern)
        deadline = time.monotonic() + timeout
        while True:
            self.check()
            with open(path, "rb") as f:
                f.seek(since)
                data = f.read().replace(b"\r", b"")
            m = rx.search(data)
            if m:
                return m
            if time.monotonic() > deadline:
                raise ClusterError(f"{name}: no {pattern!r} on {port} within {timeout} s\n"
                                   f"--- last lines of {path} ---\n{tail(path)}")
            time.sleep(0.1)

    def _lost(self, n, why):
        """The ttyS1 socket broke: report the node's failure if that is why."""
        n._shell = None
        if n.proc:
            try:
                n.proc.wait(2)
            except subprocess.TimeoutExpired:
                pass
        self.check()
        raise ClusterError(f"{n.name}: ttyS1 connection lost ({why})")

    def _send(self, n, data):
        try:
            n._shell.sendall(data)
        except OSError as e:
            self._lost(n, e)

    def _shell_recv(self, n, deadline):
        while True:
            self.check()
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            n._shell.settimeout(min(0.2, left))
            try:
                data = n._shell.recv(65536)
            except socket.timeout:
                continue
            except OSError as e:
                self._lost(n, e)
            if not data:
                self._lost(n, "closed")
            n._shell_buf += data.replace(b"\r", b"")
            return True

    def _shell_connect(self, n, deadline):
        if n._shell:
            return
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        while True:
            self.check()
            try:
                s.connect(n.ttyS1)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    raise ClusterError(f"{n.name}: cannot connect to {n.ttyS1}") from None
                time.sleep(0.1)
        n._shell = s
        n._shell_buf = b""
        # Until the shell runs, typed input is lost: probe until it answers.
        tok = uuid.uuid4().hex[:12]
        want = f"@@S{tok}@@\n".encode()
        next_probe = 0
        while want not in n._shell_buf:
            if time.monotonic() > deadline:
                n._shell = None
                s.close()
                raise ClusterError(f"{n.name}: no shell on ttyS1\n--- {n.shell_log} ---\n{tail(n.shell_log)}")
            if time.monotonic() >= next_probe:
                self._send(n, f"\necho @@S'{tok}'@@\n".encode())
                next_probe = time.monotonic() + 1.5
            self._shell_recv(n, min(deadline, next_probe))
        n._shell_buf = b""

    def shell(self, name, command, timeout=60):
        """Run `command` in the node's ttyS1 root shell; return (status, output).

        The command runs with stdin from /dev/null; output is stdout and
        stderr interleaved, without the trailing newline."""
        n = self.node(name)
        if "\n" in command or len(command) > 3000:
            raise ClusterError("shell commands must be one line under 3000 characters")
        deadline = time.monotonic() + timeout
        with n._shell_lock:
            self._shell_connect(n, deadline)
            tok = uuid.uuid4().hex[:12]
            begin = f"@@B{tok}@@\n".encode()
            end = re.compile(rf"@@E{tok}:(\d+)@@\n".encode())
            self._send(n, f"echo @@B'{tok}'@@; {{ {command}\n}} </dev/null 2>&1; echo @@E'{tok}':$?@@\n"
                             .encode())
            while True:
                m = end.search(n._shell_buf)
                if m and begin in n._shell_buf:
                    start = n._shell_buf.index(begin) + len(begin)
                    out = n._shell_buf[start:m.start()]
                    n._shell_buf = n._shell_buf[m.end():]
                    return int(m.group(1)), out.decode(errors="replace").rstrip("\n")
                if not self._shell_recv(n, deadline):
                    raise ClusterError(f"{name}: {command!r} did not finish within {timeout} s\n"
                                       f"--- {n.shell_log} ---\n{tail(n.shell_log)}")

    # ---- node control -----------------------------------------------------

    def kill(self, name):
        """Power-cut a node (SIGKILL its QEMU); not counted as a failure."""
        n = self.node(name)
        n.expected_down = True
        if n._shell:
            n._shell.close()
            n._shell = None
        if n.proc.poll() is None:
            n.proc.kill()
        n.proc.wait()

    def _qmp(self, name, command):
        n = self.node(name)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect(n.qmp)
            f = s.makefile("rwb")
            f.readline()  # greeting
            for cmd in ("qmp_capabilities", command):
                f.write(json.dumps({"execute": cmd}).encode() + b"\n")
                f.flush()
                while True:
                    reply = json.loads(f.readline() or b"{}")
                    if "event" in reply:
                        continue
                    if "error" in reply:
                        raise ClusterError(f"{name}: QMP {cmd}: {reply['error']}")
                    break

    def pause(self, name):
        """Freeze a node's CPU (a hung node: no packets, no timeouts)."""
        self._qmp(name, "stop")

    def resume(self, name):
        self._qmp(name, "cont")

    def stop(self, name):
        """Stop a node at once (QEMU quits); not counted as a failure."""
        n = self.node(name)
        n.expected_down = True
        try:
            self._qmp(name, "quit")
        except (OSError, ClusterError):
            n.proc.terminate()
        try:
            n.proc.wait(10)
        except subprocess.TimeoutExpired:
            n.proc.kill()
            n.proc.wait()

    def restart(self, name):
        """Power a stopped or killed node on again with the same disks, MACs
        and command line; its logs go on growing (use `mark` first)."""
        n = self.node(name)
        if n.proc and n.proc.poll() is None:
            raise ClusterError(f"{name} is still running: stop or kill it first")
        if n._shell:
            n._shell.close()
            n._shell = None
        n._shell_buf = b""
        self._start_node(n, fresh=False)
        n.expected_down = False
        self._write_state()

    def describe(self):
        """How to reach each console and the web page (for people)."""
        lines = []
        me = os.path.relpath(os.path.join(REPO, "qemu", "cluster"))
        rel = os.path.relpath(self.run_dir)
        rd = "" if self.own_run_dir else f" --run-dir {self.run_dir if rel.startswith('..') else rel}"
        for n in self.nodes.values():
            addr = f"storage {n.storage_ip}" if n.storage_ip else f"LAN {LAN_NET}.100"
            lines.append(f"  {n.name:7} {n.role:6} {addr}")
            lines.append(f"          console: {me} console {n.name}{rd}")
            lines.append(f"                   (or: socat -,raw,echo=0,escape=0x1d UNIX-CONNECT:{n.ttyS0})")
            lines.append(f"          shell:   {me} console {n.name}{rd} --shell   (test image only)")
            lines.append(f"          output:  {n.console_log}, {os.path.basename(n.shell_log)}")
        if "head1" in self.nodes:
            lines.append(f"  web page (head1 port 80): http://127.0.0.1:{self.web_port}/")
        lines.append("  leave a console with Ctrl-]")
        return "\n".join(lines)
