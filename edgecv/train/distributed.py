"""Training over several processes or machines on MXNet's parameter server (``dist_*``
kvstores). ``edgecv launch`` starts the scheduler, the servers and the workers; each worker
runs ``edgecv train --kvstore dist_sync`` and joins here.

The rule (what a worker changes in the recipe):

- ``batch_size`` stays per worker; a step trains on the **global batch** ``workers x
  batch_size``, worker ``rank`` taking the ``rank``-th slice of each global batch of one
  seeded order (:meth:`TrainConfig.epoch_batches`). Every worker reads the whole dataset's
  index but decodes only its samples; a sample's augmentation is seeded by its position in
  the epoch, so ``W`` workers with batch ``B`` see exactly what one process with batch
  ``W x B`` over ``W`` contexts sees.
- ``dist_sync`` / ``dist_device_sync``: the servers sum the workers' gradients, every
  worker applies the same update to the same weights (the learning rate schedule and the
  optimizer state stay on the workers, so they stay identical); the learning rate is
  scaled linearly, ``lr x workers`` (Goyal et al. 2017), with the recipe's warm-up, which
  is in epochs and so covers as many samples as on one machine.
- ``dist_async``: each worker's gradient updates the servers' weights on its own (the
  optimizer and the schedule run on the servers); the learning rate is not scaled.
- Worker 0 writes the log, checkpoints, weights and report; resuming, every worker loads
  the checkpoint in ``--out`` (a folder all of them see) and they check that they agree.
- BatchNorm statistics are per worker during an epoch (as over several GPUs in one
  process); at each epoch's end the workers replace theirs by the mean over the workers.

Failure: joining is bounded by ``EDGECV_STARTUP_TIMEOUT`` seconds (default 120; the
scheduler unreachable), and, when ``EDGECV_STEP_TIMEOUT`` is set, each step by that many
seconds (a peer gone without the launcher noticing): the worker then exits with status 1
and says why, instead of waiting forever in MXNet.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidInputError
from ..launch import PROGRESS_PREFIX
from .common import KVSTORES, LRSchedule, TrainConfig

# kvstore keys no Trainer uses (it numbers parameters from 0): resume agreement here, the
# BatchNorm statistics above it. MXNet 1.9 picks a key's server as (key * 9973) % servers
# in a C int: keys above 215329 overflow that (a negative server index with 2 or more
# servers), so these stay small
_AGREE_KEY = 100_000


class Watchdog:
    """Ends the process (status 1, ``message`` on stderr) unless kicked within ``seconds``:
    MXNet's parameter-server calls block forever when a peer is gone."""

    def __init__(self, seconds: float, message: str):
        self.seconds, self.message = seconds, message
        self._deadline = time.monotonic() + seconds
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def kick(self, message: str | None = None) -> None:
        if message:
            self.message = message
        self._deadline = time.monotonic() + self.seconds

    def stop(self) -> None:
        self._done.set()

    def _watch(self) -> None:
        while not self._done.wait(min(1.0, self.seconds)):
            if time.monotonic() > self._deadline:
                print(f"edgecv: error: {self.message}", file=sys.stderr, flush=True)
                os._exit(1)


def _env_seconds(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    try:
        return float(raw) if raw else default
    except ValueError:
        raise InvalidInputError(f"{name} must be a number of seconds, got {raw!r}") from None


@dataclasses.dataclass
class Cluster:
    """This worker's place in a distributed job."""

    kv: Any
    kvstore: str
    rank: int
    workers: int
    step_timeout: float = 0.0
    _watchdog: Watchdog | None = None
    _stats_ready: bool = False
    _settled: bool = False

    @property
    def sync(self) -> bool:
        return "async" not in self.kvstore

    @property
    def chief(self) -> bool:
        """Worker 0: the one that writes files."""
        return self.rank == 0

    def shard(self, config: TrainConfig) -> TrainConfig:
        """The recipe as this worker trains it (see the module's rule)."""
        lr = config.lr * self.workers if self.sync else config.lr
        return dataclasses.replace(
            config, num_parts=self.workers, part_index=self.rank, lr=lr, kvstore=self.kvstore
        )

    def describe(self, recipe: TrainConfig, config: TrainConfig) -> str:
        lr = (
            f"lr {recipe.lr:g} x {self.workers} = {config.lr:g} (linear scaling)"
            if self.sync
            else f"lr {config.lr:g} (async: not scaled)"
        )
        warm = f", warm-up {config.warmup_epochs:g} epochs" if config.warmup_epochs else ""
        return (
            f"{self.kvstore}: {self.workers} workers x batch {config.batch_size} = global "
            f"batch {config.global_batch}; {lr}{warm}"
        )

    def trainer_options(self, schedule: LRSchedule, it: int) -> dict[str, Any]:
        """gluon.Trainer arguments: sync updates on the workers; async on the servers,
        which then also run the learning rate schedule."""
        if self.sync:
            return {"update_on_kvstore": False}
        return {
            "update_on_kvstore": True,
            "optimizer": {
                "lr_scheduler": ServerSchedule(schedule, self.workers),
                "begin_num_update": it * self.workers,
            },
        }

    def agree(self, start: int, it: int) -> None:
        """Every worker resumes from the same epoch and iteration, or all stop here."""
        if not self.sync:  # an async server applies its optimizer to any pushed key
            return
        import mxnet as mx

        expected = self.workers * np.array([1, start, it], np.float32)
        mine = mx.nd.array([1, start, it])  # the push may reuse its buffer: compare to a copy
        total = mx.nd.zeros(3)
        self.kv.init(_AGREE_KEY, mx.nd.zeros(3))
        self.kv.push(_AGREE_KEY, mine)
        self.kv.pull(_AGREE_KEY, out=total)
        got = total.asnumpy()
        if (got != expected).any():
            raise InvalidInputError(
                f"worker {self.rank} would resume at epoch {start + 1}, iteration {it}, and "
                "another worker elsewhere: every worker must see the same checkpoint "
                f"(--out on a shared filesystem, or the same copy on each machine)"
            )

    def settle(self, trainer: Any) -> None:
        """Before the first update (dist_sync): let the Trainer put worker 0's initial
        weights on the servers and every worker pull them, and wait until every pull has
        landed.

        Without the wait MXNet 1.9 can lose the initial weights: the Trainer's broadcast
        pulls a key into the weight array and the next step pushes the gradient from
        another array, so the worker's engine does not order the two, and a pull that
        runs late returns what the servers hold by then, the summed gradient (seen here:
        one worker's last layer started from its gradient in 1 run of 5). The parameters
        must have their shapes (after the first forward) for the Trainer to send them."""
        if self._settled:
            return
        self._settled = True
        if not self.sync:
            # the pushes write the weights on the servers and the pulls write them back into
            # the weight arrays, after the broadcast's pull; and the Trainer must send the
            # optimizer to the servers with its first step's gradient scale, not before
            return
        import mxnet as mx

        # gluon.Trainer does this lazily inside its first step(); no public call does it alone
        if not trainer._kv_initialized:
            trainer._init_kvstore()
        if trainer._params_to_init:
            trainer._init_params()
        mx.nd.waitall()

    def average_statistics(self, net: Any) -> None:
        """Replace every worker's BatchNorm running statistics (the parameters without a
        gradient) by their mean over the workers. The running averages are linear in the
        batch statistics, so this is what one process over W contexts saves (it averages
        its contexts' copies), whenever it is done. dist_async: left per worker (its
        servers would apply the optimizer to them)."""
        if not self.sync:
            return
        import mxnet as mx

        stats = [p for _, p in sorted(net.collect_params().items()) if p.grad_req == "null"]
        if not self._stats_ready:
            for i, p in enumerate(stats):
                self.kv.init(_AGREE_KEY + 1 + i, mx.nd.zeros(p.shape, dtype=p.dtype))
            self._stats_ready = True
        for i, p in enumerate(stats):
            total = mx.nd.zeros(p.shape, dtype=p.dtype)
            self.kv.push(_AGREE_KEY + 1 + i, p.data().copy())
            self.kv.pull(_AGREE_KEY + 1 + i, out=total)
            p.set_data(total / self.workers)

    def step_done(self, epoch: int, step: int) -> None:
        """Step ``step`` (0: none yet) of ``epoch`` (0-based) finished: the next must finish
        within the step timeout, if there is one."""
        if self._watchdog is None and self.step_timeout > 0:
            self._watchdog = Watchdog(self.step_timeout, "")
        if self._watchdog is not None:
            self._watchdog.kick(
                f"worker {self.rank}: epoch {epoch + 1} step {step + 1} did not finish within "
                f"{self.step_timeout:g} s (EDGECV_STEP_TIMEOUT): a worker or server is gone "
                "or stuck"
            )

    def pause_watchdog(self) -> None:
        """Validation on worker 0 may take long; the others wait in their next step."""
        if self._watchdog is not None:
            self._watchdog.stop()
            self._watchdog = None


def connect(kvstore: str) -> Cluster:
    """Join the job described by the ``DMLC_*`` environment (as ``edgecv launch`` sets it)."""
    if kvstore not in KVSTORES:
        raise InvalidInputError(f"unknown kvstore {kvstore!r} ({', '.join(KVSTORES)})")
    missing = [
        v
        for v in ("DMLC_ROLE", "DMLC_PS_ROOT_URI", "DMLC_PS_ROOT_PORT", "DMLC_NUM_WORKER")
        if not os.environ.get(v)
    ]
    if missing:
        raise InvalidInputError(
            f"--kvstore {kvstore} runs under `edgecv launch` (or a cluster that sets MXNet's "
            f"DMLC_* environment); missing here: {', '.join(missing)}"
        )
    if os.environ["DMLC_ROLE"] != "worker":
        raise InvalidInputError(
            f"DMLC_ROLE is {os.environ['DMLC_ROLE']!r}: edgecv train runs as a worker"
        )
    scheduler = f"{os.environ['DMLC_PS_ROOT_URI']}:{os.environ['DMLC_PS_ROOT_PORT']}"
    timeout = _env_seconds("EDGECV_STARTUP_TIMEOUT", 120.0)
    guard = Watchdog(
        timeout,
        f"could not join the training job within {timeout:g} s (EDGECV_STARTUP_TIMEOUT): "
        f"is the scheduler at {scheduler} reachable, and are all "
        f"{os.environ['DMLC_NUM_WORKER']} workers and {os.environ.get('DMLC_NUM_SERVER', '?')} "
        "servers started?",
    )
    import mxnet as mx

    try:
        kv = mx.kv.create(kvstore)  # blocks until every node has registered
    finally:
        guard.stop()
    return Cluster(kv, kvstore, kv.rank, kv.num_workers, _env_seconds("EDGECV_STEP_TIMEOUT", 0.0))


class ServerSchedule:
    """The recipe's per-step schedule run by the servers' optimizer (``dist_async``): each
    worker's push is one update there, so ``workers`` updates make one step."""

    def __init__(self, schedule: LRSchedule, workers: int):
        self.schedule, self.workers = schedule, workers
        self.base_lr = schedule.base

    def __call__(self, num_update: int) -> float:
        return float(self.schedule(max(0, num_update - 1) // self.workers))


def progress_line(record: dict[str, Any]) -> None:
    """One machine-readable progress record for ``edgecv launch`` (on stderr)."""
    print(PROGRESS_PREFIX + json.dumps(record, default=float), file=sys.stderr, flush=True)


class StepDigests:
    """``DIR/rank-<r>.jsonl``: per step, the loss and sha256 of the trainable weights and
    of the rest (BatchNorm statistics), to check that workers hold the same weights."""

    def __init__(self, folder: str | os.PathLike[str], rank: int):
        self.path = Path(folder) / f"rank-{rank}.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, net: Any, **record: Any) -> None:
        trained, other = hashlib.sha256(), hashlib.sha256()
        # structural names ("features.0.weight"): a block's prefix counts the blocks that
        # the process built before it
        for name, p in sorted(net._collect_params_with_prefix().items()):
            data = p.list_data()[0].asnumpy().tobytes()
            (trained if p.grad_req != "null" else other).update(name.encode() + data)
        record.update(weights=trained.hexdigest(), statistics=other.hexdigest())
        with self.path.open("a") as f:
            f.write(json.dumps(record, default=float) + "\n")
