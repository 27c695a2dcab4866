"""Device farms through TVM's own RPC (``tvm.rpc``): a tracker that boards register with, an
RPC server on each board, the board count a tuning run can use, and an artifact's network
timed on a board.

    edgecv rpc tracker --port 9190                       # on any machine the boards reach
    edgecv rpc server --tracker HOST:9190 --key rpi5     # on each board
    edgecv tune MODEL --target rpi5 --rpc HOST:9190 --key rpi5   # here (metaschedule.py)
    edgecv bench ARTIFACT --rpc HOST:9190 --key rpi5             # here

The server is TVM's (``tvm.rpc.Server``); all ``edgecv rpc server`` adds is that it imports
edgecv's C++ module in the server process first, so that the kernel-library functions that
artifacts call (``edgecv.dnnl.*``, ``edgecv.xnnpack.*``) are registered there: a server
started by TVM's own ``python -m tvm.exec.rpc_server`` measures MetaSchedule candidates just
as well (they call no kernel library) but cannot run an artifact that offloads layers.

TVM's RPC runs anything it is sent (uploaded libraries, any registered function): use it on
a trusted network only.
"""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import EdgecvError, InvalidInputError


def parse_address(text: str, option: str = "--rpc") -> tuple[str, int]:
    """``HOST:PORT`` → (host, port), or a clear error naming ``option``."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidInputError(f"{option} wants HOST:PORT (e.g. 192.168.1.10:9190), got {text!r}")
    return host, int(port)


def serve_tracker(host: str = "0.0.0.0", port: int = 9190, port_end: int = 9199) -> None:
    """Run TVM's RPC tracker until interrupted (the first free port from ``port``)."""
    try:
        from tvm.rpc.tracker import Tracker
    except ImportError as err:  # the tracker's event loop is tornado's
        raise EdgecvError(
            f"TVM's RPC tracker needs tornado ({err}): pip install 'edgecv[rpc]' (or tornado)"
        ) from None
    tracker = Tracker(host, port=port, port_end=port_end, silent=True)
    print(f"edgecv: RPC tracker listening on {host}:{tracker.port}", flush=True)
    try:
        tracker.proc.join()
    finally:
        tracker.terminate()


def register_edgecv_kernels() -> None:
    """In the RPC server's process (TVM calls it there at start-up): import edgecv's C++
    module, which registers the kernel-library functions artifacts call. Each RPC session is
    a fork of that process, so the registration is inherited."""
    from .. import _runtime  # noqa: F401 - imported for its registrations


def serve_board(
    tracker: tuple[str, int],
    key: str,
    host: str = "0.0.0.0",
    port: int = 9090,
    port_end: int = 9199,
    custom_addr: str | None = None,
) -> None:
    """Run TVM's RPC server (edgecv's kernels registered), registered with ``tracker`` under
    ``key``, until interrupted."""
    from tvm import rpc

    if not key:
        raise InvalidInputError("--key is required: the name jobs ask the tracker for (e.g. rpi5)")
    _summary(tracker)  # an unreachable tracker: a clear error now, not TVM's silent retries
    server = rpc.Server(
        host,
        port,
        port_end,
        tracker_addr=tracker,
        key=key,
        custom_addr=custom_addr,
        silent=True,
        server_init_callback=register_edgecv_kernels,
    )
    try:
        where = f"{host}:{server.port} (key {key!r})"
        deadline = time.monotonic() + 30
        listed = _listed(tracker, key, server.port)
        while not listed and server.proc.is_alive() and time.monotonic() < deadline:
            time.sleep(0.2)
            listed = _listed(tracker, key, server.port)
        if listed:
            print(
                f"edgecv: RPC server {where} registered with {tracker[0]}:{tracker[1]}", flush=True
            )
        else:
            print(
                f"edgecv: RPC server {where} started, but the tracker at {tracker[0]}:{tracker[1]} "
                "does not list it after 30 s: check that the tracker can reach this board "
                "(--custom-addr if it sees another address)",
                file=sys.stderr,
                flush=True,
            )
        server.proc.join()
        raise EdgecvError(f"the RPC server process ended (exit status {server.proc.exitcode})")
    finally:
        server.terminate()


def _summary(tracker: tuple[str, int]) -> dict[str, Any]:
    """The tracker's summary (its queues and servers); a clear error when it cannot be
    reached."""
    from tvm import rpc

    try:  # TVM's client retries an unreachable tracker for minutes: ask once first
        socket.create_connection(tracker, timeout=10).close()
        client = rpc.connect_tracker(*tracker)
        summary = client.summary()
        client.close()
    except (OSError, RuntimeError) as err:
        raise EdgecvError(
            f"cannot reach the RPC tracker at {tracker[0]}:{tracker[1]} ({err}): start it with "
            "`edgecv rpc tracker`"
        ) from None
    return summary


def _listed(tracker: tuple[str, int], key: str, port: int) -> bool:
    """Whether the tracker lists a server with ``key`` on ``port``."""
    try:
        servers = _summary(tracker).get("server_info", [])
    except EdgecvError:
        return False
    return any(
        _board_key(s) == key and list(s.get("addr") or [None, None])[1] == port for s in servers
    )


def _board_key(server_info: dict[str, Any]) -> str:
    """The key a server registered under (the tracker lists it as ``server:KEY``)."""
    return str(server_info.get("key", "")).split(":", 1)[-1]


def registered_boards(tracker: tuple[str, int], key: str) -> int:
    """How many servers with ``key`` the tracker knows; a clear error when the tracker cannot
    be reached, has none, or has none free (TVM's request would wait for one without end)
    — before any long work."""
    summary = _summary(tracker)
    keys = [_board_key(s) for s in summary.get("server_info", [])]
    count = keys.count(key)
    if count == 0:
        known = ", ".join(sorted(set(keys))) or "none"
        raise EdgecvError(
            f"no RPC server with key {key!r} is registered with the tracker at "
            f"{tracker[0]}:{tracker[1]} (keys there: {known}): start one on the board with "
            f"`edgecv rpc server --tracker HOST:PORT --key {key}`"
        )
    free = summary.get("queue_info", {}).get(key, {}).get("free", count)
    if free == 0:
        raise EdgecvError(
            f"all {count} RPC servers with key {key!r} are busy (another job holds them): "
            "try again when it has finished"
        )
    return count


def _session(tracker: tuple[str, int], key: str, timeout_s: float) -> Any:
    from tvm import rpc

    try:
        return rpc.connect_tracker(*tracker).request(key, session_timeout=timeout_s)
    except (OSError, RuntimeError) as err:
        raise EdgecvError(f"no RPC session with a {key!r} board: {err}") from None


def board_threads(tracker: tuple[str, int], key: str) -> int:
    """The number of threads TVM's thread pool runs on a ``key`` board (its cores, unless the
    server's TVM_NUM_THREADS says otherwise): what MetaSchedule's CPU rules tune for."""
    registered_boards(tracker, key)
    remote = _session(tracker, key, 60)
    return int(remote.get_function("runtime.NumThreads")())


def time_on_board(
    library: Path,
    inputs: list[np.ndarray],
    params: list[np.ndarray],
    tracker: tuple[str, int],
    key: str,
    number: int = 10,
    repeat: int = 3,
    timeout_s: float = 600,
) -> dict[str, Any]:
    """Upload ``library`` (a compiled artifact's) to a ``key`` board, run its ``main`` in the
    board's TVM Relax VM and time it with TVM's remote time evaluator (on the board: the RPC
    round trip is not in the numbers). Returns the timings and the first run's outputs."""
    import tvm
    from tvm import relax

    registered_boards(tracker, key)  # else the tracker would queue the request forever
    remote = _session(tracker, key, timeout_s)
    started = time.perf_counter()
    remote.upload(str(library))
    upload_s = time.perf_counter() - started
    dev = remote.cpu()
    try:
        vm = relax.VirtualMachine(remote.load_module(library.name), dev)
    except Exception as err:  # e.g. a kernel function the server does not have
        last = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        hint = (
            " (a library that calls edgecv's kernels needs a server started with "
            "`edgecv rpc server`, which registers them)"
            if "edgecv." in str(err)
            else ""
        )
        raise EdgecvError(f"the board could not load {library.name}: {last}{hint}") from None
    args = [tvm.runtime.tensor(a, dev) for a in [*inputs, *params]]
    out = vm["main"](*args)
    items = [out] if hasattr(out, "numpy") else list(out)
    outputs = [o.numpy() for o in items]
    timed = vm.time_evaluator("main", dev, number=number, repeat=repeat)(*args)
    runs_ms = [float(r) * 1e3 for r in timed.results]
    return {
        "outputs": outputs,
        "median_ms": float(np.median(runs_ms)),
        "min_ms": min(runs_ms),
        "runs_ms": runs_ms,
        "number": number,
        "repeat": repeat,
        "upload_s": upload_s,
        "board_threads": int(remote.get_function("runtime.NumThreads")()),
    }


__all__ = [
    "board_threads",
    "registered_boards",
    "parse_address",
    "register_edgecv_kernels",
    "serve_board",
    "serve_tracker",
    "time_on_board",
]
