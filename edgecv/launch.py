"""``edgecv launch``: run a distributed training job on MXNet's parameter server.

One scheduler, ``--servers`` servers and ``--workers`` workers, each a process with MXNet's
``DMLC_*`` environment: ``DMLC_ROLE`` (scheduler | server | worker), ``DMLC_PS_ROOT_URI``
and ``DMLC_PS_ROOT_PORT`` (the scheduler's address), ``DMLC_NUM_SERVER`` and
``DMLC_NUM_WORKER``. A scheduler or a server is only ``python -c "import mxnet"`` (MXNet
runs the node when it is imported with that role); a worker runs the command after ``--``,
normally ``edgecv train ...`` (which then defaults to ``--kvstore dist_sync``).

Where: all on this machine (default), or over ssh, servers and workers placed round-robin
on the hosts of ``--hosts`` (one ssh destination a line); the scheduler runs here and the
others reach it at ``--scheduler-host``.

The launcher writes each process's output to ``LOG_DIR/<role>-<n>.log`` (and the list of
processes to ``LOG_DIR/processes.json``), prints one merged progress line (the workers'
mean loss) and watches the processes: when one fails, or a server or the scheduler ends
before the workers do, it stops the others and exits with status 1, naming the process
and its log. Exit codes: 0 the workers finished · 1 a process failed · 2 bad usage ·
130 interrupted.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .errors import InvalidInputError

# keep-alives: a remote host that dies ends its ssh (and so the job) within about a minute
DEFAULT_SSH = (
    "ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
    "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4",
)  # fmt: skip
# the prefix of a worker's per-step record on stderr (edgecv.train.distributed writes it)
PROGRESS_PREFIX = "edgecv-progress "


@dataclass
class Node:
    """One process of the job: what runs where, with which environment."""

    role: str  # scheduler | server | worker
    slot: int  # n-th of its role
    host: str | None  # ssh destination; None: this machine
    argv: list[str]
    env: dict[str, str]

    @property
    def name(self) -> str:
        return f"{self.role}-{self.slot}"


def read_hosts(path: str | os.PathLike[str]) -> list[str]:
    """ssh destinations, one a line; blank lines and ``#`` comments ignored."""
    p = Path(path)
    if not p.is_file():
        raise InvalidInputError(f"hosts file not found: {p}")
    hosts = [line.split("#")[0].strip() for line in p.read_text().splitlines()]
    hosts = [h for h in hosts if h]
    if not hosts:
        raise InvalidInputError(f"{p} lists no hosts")
    bad = [h for h in hosts if any(c.isspace() for c in h)]
    if bad:
        raise InvalidInputError(f"{p}: one ssh destination a line, got {bad[0]!r}")
    return hosts


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def route_address(host: str) -> str:
    """This machine's address on the route to ``host`` (no packet is sent)."""
    name = host.rpartition("@")[2]
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((name, 9))
            return s.getsockname()[0]
    except OSError as err:
        raise InvalidInputError(
            f"cannot find this machine's address towards {name} ({err}): pass --scheduler-host"
        ) from None


def plan(
    command: list[str],
    workers: int,
    servers: int = 1,
    hosts: list[str] | None = None,
    port: int | None = None,
    scheduler_host: str | None = None,
    python: str = sys.executable,
    env: dict[str, str] | None = None,
) -> list[Node]:
    """The job's processes: the scheduler (here), then servers and workers, round-robin
    over ``hosts`` (or here)."""
    if workers < 1 or servers < 1:
        raise InvalidInputError("a job needs at least one worker and one server")
    if not command:
        raise InvalidInputError("no worker command: `edgecv launch ... -- edgecv train ...`")
    if scheduler_host is None:
        scheduler_host = route_address(hosts[0]) if hosts else "127.0.0.1"
    common = {
        "DMLC_PS_ROOT_URI": scheduler_host,
        "DMLC_PS_ROOT_PORT": str(port or free_port()),
        "DMLC_NUM_SERVER": str(servers),
        "DMLC_NUM_WORKER": str(workers),
        **(env or {}),
    }
    node_python = [python, "-c", "import mxnet"]
    nodes = [Node("scheduler", 0, None, node_python, {**common, "DMLC_ROLE": "scheduler"})]
    if not hosts:
        common["DMLC_NODE_HOST"] = scheduler_host  # bind every node to the loopback too
        nodes[0].env["DMLC_NODE_HOST"] = scheduler_host
    for role, count, argv in (("server", servers, node_python), ("worker", workers, command)):
        for i in range(count):
            host = hosts[i % len(hosts)] if hosts else None
            node_env = {**common, "DMLC_ROLE": role}
            if role == "worker":
                node_env["EDGECV_LAUNCH_PROGRESS"] = "1"  # per-step records for the merged line
            nodes.append(Node(role, i, host, list(argv), node_env))
    return nodes


def remote_command(node: Node, cwd: str, ssh: tuple[str, ...] = DEFAULT_SSH) -> list[str]:
    """The ssh command line that runs ``node`` on its host, in ``cwd``. The remote shell
    kills the process when the ssh connection closes (its stdin ends), so that stopping
    the local ssh client stops the remote process too."""
    assert node.host is not None
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(node.env.items()))
    run = f"env {env} {shlex.join(node.argv)}"
    # a background job's stdin is /dev/null unless redirected: the watcher reads ssh's
    # stdin through fd 3, and kills the job when it ends
    script = (
        f"cd {shlex.quote(cwd)} && exec 3<&0 && {{ {run} 3<&- & p=$!; "
        "{ cat <&3 >/dev/null; kill $p; } >/dev/null 2>&1 & w=$!; "
        "wait $p; s=$?; kill $w 2>/dev/null; exit $s; }"
    )
    return [*ssh, node.host, f"sh -c {shlex.quote(script)}"]


@dataclass
class _Proc:
    node: Node
    popen: subprocess.Popen
    log: Path
    rank: int | None = None
    code: int | None = None
    tail: list[str] = field(default_factory=list)


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


class Launcher:
    """Starts the nodes, copies their output to logs, merges progress, watches them."""

    def __init__(
        self,
        nodes: list[Node],
        log_dir: str | os.PathLike[str],
        cwd: str | None = None,
        ssh: tuple[str, ...] = DEFAULT_SSH,
        progress_every: float = 10.0,
        grace: float = 30.0,
        out: IO[str] | None = None,
    ):
        self.nodes, self.log_dir, self.ssh = nodes, Path(log_dir), ssh
        self.cwd = cwd or os.getcwd()
        self.progress_every, self.grace = progress_every, grace
        self.out = out or sys.stderr
        self.procs: list[_Proc] = []
        self._lock = threading.Lock()
        self._steps: dict[tuple[int, int], dict[int, dict[str, Any]]] = {}
        self._printed = 0.0
        self._t0 = time.monotonic()

    def say(self, message: str) -> None:
        print(f"[launch] {message}", file=self.out, flush=True)

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for node in self.nodes:
            log = self.log_dir / f"{node.name}.log"
            if node.host is None:
                argv, env = node.argv, {**os.environ, **node.env}
            else:
                argv, env = remote_command(node, self.cwd, self.ssh), dict(os.environ)
            try:
                popen = subprocess.Popen(
                    argv,
                    cwd=self.cwd if node.host is None else None,
                    env=env,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    errors="replace",  # a stray non-UTF-8 byte must not stop the log copy
                    bufsize=1,
                    start_new_session=True,
                )
            except OSError as err:
                self.stop()
                raise InvalidInputError(f"cannot start {node.name} ({argv[0]}): {err}") from None
            proc = _Proc(node, popen, log)
            self.procs.append(proc)
            threading.Thread(target=self._pump, args=(proc,), daemon=True).start()
        listing = self.log_dir / "processes.json.tmp"  # replaced whole: readers see all or none
        listing.write_text(
            json.dumps(
                [
                    {
                        "name": p.node.name,
                        "role": p.node.role,
                        "host": p.node.host or "localhost",
                        "pid": p.popen.pid,
                        "log": str(p.log),
                    }
                    for p in self.procs
                ],
                indent=2,
            )
            + "\n"
        )
        listing.replace(self.log_dir / "processes.json")

    def _pump(self, proc: _Proc) -> None:
        """Copy a process's output to its log; collect the workers' progress records."""
        assert proc.popen.stdout is not None
        with proc.log.open("w") as log:
            sink: IO[str] | None = log
            for line in proc.popen.stdout:
                if sink is not None:
                    try:
                        sink.write(line)
                        sink.flush()
                    except OSError as err:  # a full disk: keep reading, or the node blocks
                        self.say(f"{proc.node.name}: its log stops here ({proc.log}: {err})")
                        sink = None
                proc.tail = (proc.tail + [line.rstrip()])[-8:]
                if proc.node.role == "worker" and line.startswith(PROGRESS_PREFIX):
                    try:
                        self._progress(proc, json.loads(line[len(PROGRESS_PREFIX) :]))
                    except (json.JSONDecodeError, KeyError, TypeError):
                        pass  # a garbled record costs one progress line, not the job

    def _progress(self, proc: _Proc, record: dict[str, Any]) -> None:
        workers = sum(1 for n in self.nodes if n.role == "worker")
        with self._lock:
            proc.rank = int(record["rank"])
            key = (int(record["epoch"]), int(record["step"]))
            seen = self._steps.setdefault(key, {})
            seen[proc.node.slot] = record
            if len(seen) < workers:
                return
            for old in [k for k in self._steps if k <= key]:
                del self._steps[old]
            now = time.monotonic()
            last = key[1] == int(record["steps"])
            if not last and now - self._printed < self.progress_every:
                return
            self._printed = now
        loss = sum(r["loss"] for r in seen.values()) / workers
        self.say(
            f"epoch {key[0]}/{record['epochs']} step {key[1]}/{record['steps']} "
            f"loss {loss:.4f} (mean of {workers} workers) lr {record['lr']:.4g} "
            f"{now - self._t0:.0f}s"
        )

    def _label(self, proc: _Proc) -> str:
        where = f" on {proc.node.host}" if proc.node.host else ""
        rank = f", rank {proc.rank}" if proc.rank is not None else ""
        return f"{proc.node.name} (pid {proc.popen.pid}{where}{rank})"

    def watch(self, poll: float = 0.2) -> int:
        """Wait for the workers; 0 when they all succeed, 1 as soon as anything fails."""
        workers = [p for p in self.procs if p.node.role == "worker"]
        ended: dict[int, float] = {}  # id of a server/scheduler that exited 0 -> when
        while True:
            now = time.monotonic()
            for p in self.procs:
                if p.code is None:
                    p.code = p.popen.poll()
            failed = next((p for p in self.procs if p.code not in (None, 0)), None)
            if failed is None and any(p.code is None for p in workers):
                # servers and the scheduler end cleanly once every worker has said goodbye,
                # which may be a moment before the workers' processes are gone
                for p in self.procs:
                    if p.node.role != "worker" and p.code == 0:
                        if now - ended.setdefault(id(p), now) > self.grace:
                            failed = p
            if failed is not None:
                return self._fail(failed)
            if all(p.code == 0 for p in workers):
                break
            time.sleep(poll)
        deadline = time.monotonic() + self.grace
        while any(p.popen.poll() is None for p in self.procs) and time.monotonic() < deadline:
            time.sleep(poll)
        lingering = [p.node.name for p in self.procs if p.popen.poll() is None]
        if lingering:
            self.say(f"stopping {', '.join(lingering)} ({self.grace:g} s after the workers)")
            self.stop()
        self.say(
            f"{len(workers)} workers finished in {time.monotonic() - self._t0:.0f}s; "
            f"logs in {self.log_dir}"
        )
        return 0

    def _fail(self, proc: _Proc) -> int:
        code = proc.code if proc.code is not None else 0
        what = _describe_exit(code) if code else "ended before the workers finished"
        time.sleep(0.3)  # let the pump copy the last lines
        self.stop()
        tail = "\n".join(f"    {line}" for line in proc.tail[-5:])
        print(
            f"edgecv: error: {self._label(proc)} {what}; stopped the other processes. "
            f"Its log: {proc.log}" + (f"\n  last lines:\n{tail}" if tail else ""),
            file=self.out,
            flush=True,
        )
        return 1

    def stop(self, wait: float = 5.0) -> None:
        """SIGTERM every process group still running, SIGKILL after ``wait`` seconds."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            alive = [p for p in self.procs if p.popen.poll() is None]
            for p in alive:
                try:
                    os.killpg(p.popen.pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + wait
            while alive and time.monotonic() < deadline:
                alive = [p for p in alive if p.popen.poll() is None]
                time.sleep(0.05)
            if not alive:
                break


def launch(
    command: list[str],
    workers: int,
    servers: int = 1,
    hosts_file: str | None = None,
    port: int | None = None,
    scheduler_host: str | None = None,
    log_dir: str = "launch-logs",
    env: dict[str, str] | None = None,
    ssh: tuple[str, ...] = DEFAULT_SSH,
    python: str = sys.executable,
    startup_timeout: float = 120.0,
    progress_every: float = 10.0,
) -> int:
    """Run the job; the exit status (see the module docstring)."""
    hosts = read_hosts(hosts_file) if hosts_file else None
    env = {"EDGECV_STARTUP_TIMEOUT": f"{startup_timeout:g}", **(env or {})}
    nodes = plan(command, workers, servers, hosts, port, scheduler_host, python, env)
    sched = nodes[0].env
    where = f"on {len(hosts)} hosts" if hosts else "on this machine"
    launcher = Launcher(nodes, log_dir, ssh=ssh, progress_every=progress_every)
    launcher.say(
        f"scheduler {sched['DMLC_PS_ROOT_URI']}:{sched['DMLC_PS_ROOT_PORT']}, {servers} "
        f"servers, {workers} workers {where}; logs in {log_dir}/"
    )
    # SIGTERM/SIGHUP (a CI timeout, a closed terminal) end the job as Ctrl-C does: the
    # nodes run in their own sessions and would otherwise outlive the launcher
    handled = (signal.SIGTERM, signal.SIGHUP)
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, _interrupt) for sig in handled}
    try:
        launcher.start()
        return launcher.watch()
    except BaseException:
        launcher.stop()
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt
