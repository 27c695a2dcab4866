"""What every training task shares: the recipe, LR schedule, seeding, checkpoints, log, progress."""

from __future__ import annotations

import json
import os
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidInputError

KVSTORES = ("device", "local", "dist_sync", "dist_device_sync", "dist_async")


@dataclass
class TrainConfig:
    """A training recipe. The defaults are GluonCV's tricks: warmup, cosine decay, label
    smoothing, NAG, no weight decay on biases and BatchNorm."""

    epochs: int = 10
    batch_size: int = 32
    lr: float = 0.1
    momentum: float = 0.9
    wd: float = 1e-4
    optimizer: str = "nag"
    warmup_epochs: float = 1.0
    lr_mode: str = "cosine"  # cosine | step | constant
    lr_steps: tuple[int, ...] = ()  # epochs at which "step" divides the LR by 10
    label_smoothing: float = 0.1
    mixup_alpha: float = 0.0  # 0: off
    mixup_off_epochs: int = 0  # last epochs trained without mixup
    no_wd_bias_bn: bool = True
    hflip: bool = True  # random horizontal flip (off for data where it changes the class)
    seed: int = 0
    input_size: int | None = None  # square side; None: the model's own
    contexts: tuple[str, ...] = ("cpu",)  # "cpu", "gpu:0", ...: data parallel over these
    # MXNet kvstore: device | local (one process), dist_sync | dist_device_sync | dist_async
    # (several processes or machines, started by `edgecv launch`)
    kvstore: str = "device"
    max_iters_per_epoch: int = 0  # 0: the whole dataset (a cap is for smoke runs)
    # one OpenMP thread: parallel reductions (BatchNorm backward) then sum in a fixed order,
    # so the same seed gives the same weights bit for bit; slower on several cores
    deterministic: bool = False
    extra: dict[str, Any] = field(default_factory=dict)  # task-specific settings
    # set by train() from a distributed kvstore, not by recipes: each global batch is
    # num_parts x batch_size samples, of which this worker takes part part_index
    num_parts: int = 1
    part_index: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise InvalidInputError("epochs and batch size must be >= 1")
        if self.lr <= 0:
            raise InvalidInputError(f"learning rate must be > 0, got {self.lr}")
        if self.lr_mode not in ("cosine", "step", "constant"):
            raise InvalidInputError(f"unknown lr_mode {self.lr_mode!r} (cosine, step, constant)")
        if not 0 <= self.label_smoothing < 1:
            raise InvalidInputError("label_smoothing must be within [0, 1)")
        if self.kvstore not in KVSTORES:
            raise InvalidInputError(f"unknown kvstore {self.kvstore!r} ({', '.join(KVSTORES)})")
        if not 0 <= self.part_index < self.num_parts:
            raise InvalidInputError(f"part {self.part_index} of {self.num_parts} does not exist")

    @property
    def global_batch(self) -> int:
        """Samples per step over all workers."""
        return self.batch_size * self.num_parts

    def batches_per_epoch(self, n_samples: int) -> int:
        """Steps per epoch (every worker takes the same number)."""
        n = n_samples // self.global_batch
        return min(n, self.max_iters_per_epoch) if self.max_iters_per_epoch else n

    def epoch_batches(
        self, order: np.ndarray, epoch: int, n_batches: int | None = None
    ) -> Iterator[Batch]:
        """This worker's batches of one epoch whose samples (dataset indices) come in
        ``order``: global batch ``b`` is ``order[b*G:(b+1)*G]`` (G = :attr:`global_batch`)
        and this worker's part is its ``part_index``-th slice of ``batch_size``. So the
        workers' batches, side by side, are what one process with ``batch_size x
        num_parts`` trains on, augmented alike (see :class:`Batch`)."""
        streams = _Streams(self.seed, epoch)
        bs, g = self.batch_size, self.global_batch
        n = self.batches_per_epoch(len(order)) if n_batches is None else n_batches
        for b in range(n):
            first = b * g + self.part_index * bs
            yield Batch(order[first : first + bs], first, b, streams)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(doc) - known)
        if unknown:
            raise InvalidInputError(f"unknown training settings: {', '.join(unknown)}")
        doc = dict(doc)
        for key in ("lr_steps", "contexts"):
            if key in doc:
                doc[key] = tuple(doc[key])
        return cls(**doc)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Streams:
    """Random streams of one epoch, reseeded in place (constructing a RandomState costs
    10x more than reseeding one): per sample position, and per global batch."""

    def __init__(self, seed: int, epoch: int):
        self.key = (seed, epoch)
        self.rng = np.random.RandomState()

    def at(self, *where: int) -> np.random.RandomState:
        self.rng.seed([*self.key, *where])
        return self.rng


class Batch:
    """One worker's part of a global batch. Iterating gives ``(dataset index, rng)`` per
    sample, the rng seeded by (seed, epoch, the sample's position in the epoch), so a
    sample's augmentation does not depend on how many workers share the batch; ``rng()``
    is the batch's own stream (mixup), the same on every worker."""

    def __init__(self, indices: np.ndarray, first: int, number: int, streams: _Streams):
        self.indices, self.first, self.number, self._streams = indices, first, number, streams

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[tuple[int, np.random.RandomState]]:
        for k, index in enumerate(self.indices):
            yield int(index), self._streams.at(self.first + k)

    def rng(self) -> np.random.RandomState:
        return self._streams.at(self.number, 1 << 30)


class LRSchedule:
    """Linear warmup from 0, then cosine to 0 (or /10 steps, or constant); per iteration."""

    def __init__(self, config: TrainConfig, iters_per_epoch: int):
        self.base = config.lr
        self.mode = config.lr_mode
        self.per_epoch = iters_per_epoch
        self.warmup = int(round(config.warmup_epochs * iters_per_epoch))
        self.total = config.epochs * iters_per_epoch
        self.steps = [s * iters_per_epoch for s in config.lr_steps]

    def __call__(self, it: int) -> float:
        if it < self.warmup:
            return self.base * (it + 1) / self.warmup
        if self.mode == "cosine":
            t = (it - self.warmup) / max(1, self.total - self.warmup)
            return self.base * 0.5 * (1 + np.cos(np.pi * min(t, 1.0)))
        if self.mode == "step":
            return self.base * 0.1 ** sum(it >= s for s in self.steps)
        return self.base


def seed_epoch(seed: int, epoch: int) -> np.random.RandomState:
    """Seed MXNet, NumPy and random for one epoch; a resumed run repeats the same draws."""
    import mxnet as mx

    mx.random.seed(seed * 1000 + epoch)
    np.random.seed((seed * 1000 + epoch) % 2**32)
    random.seed(seed * 1000 + epoch)
    return np.random.RandomState([seed, epoch])


def contexts(names: tuple[str, ...]) -> list[Any]:
    import mxnet as mx

    out = []
    for name in names:
        kind, _, index = name.partition(":")
        if kind == "cpu":
            out.append(mx.cpu(int(index or 0)))
        elif kind == "gpu":
            out.append(mx.gpu(int(index or 0)))
        else:
            raise InvalidInputError(f"unknown context {name!r} (cpu, gpu:N)")
    return out


def make_trainer(
    net: Any, config: TrainConfig, n_contexts: int, cluster: Any = None, options: Any = None
) -> Any:
    """gluon.Trainer with the recipe's optimizer; biases and BatchNorm get no weight decay.
    ``cluster``: a distributed job's kvstore; ``options``: its Trainer arguments."""
    from mxnet import gluon

    params = net.collect_params()
    if config.no_wd_bias_bn:
        for name, p in params.items():
            if name.endswith(("bias", "gamma", "beta")):
                p.wd_mult = 0.0
    opt: dict[str, Any] = {"learning_rate": config.lr, "wd": config.wd}
    if config.optimizer in ("nag", "sgd"):
        opt["momentum"] = config.momentum
    if cluster is not None:
        options = dict(options or {})
        opt.update(options.pop("optimizer", {}))
        return gluon.Trainer(params, config.optimizer, opt, kvstore=cluster.kv, **options)
    kv = config.kvstore if n_contexts > 1 else None
    return gluon.Trainer(params, config.optimizer, opt, kvstore=kv)


def _atomic_write(path: Path, write: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(str(tmp))
    os.replace(tmp, path)


class Checkpoint:
    """``out/checkpoint.json`` and the ``checkpoint-<epoch>.{params,states}`` it names,
    written after each epoch. The JSON is replaced last, atomically, and names its own
    epoch's files, so a run stopped at any moment (a killed job) resumes from the last
    complete checkpoint; older epochs' files are removed after it."""

    def __init__(self, out: Path):
        self.out = out

    def save(
        self, net: Any, trainer: Any, epoch: int, it: int, history: list[dict], states: bool = True
    ) -> None:
        """``states=False``: no optimizer state (dist_async keeps it on the servers)."""
        stem = f"checkpoint-{epoch + 1:04d}"
        doc: dict[str, Any] = {"epoch": epoch, "iteration": it, "history": history}
        doc["params"] = f"{stem}.params"
        _atomic_write(self.out / doc["params"], net.save_parameters)
        if states:
            doc["states"] = f"{stem}.states"
            _atomic_write(self.out / doc["states"], trainer.save_states)
        _atomic_write(self.out / "checkpoint.json", lambda p: Path(p).write_text(json.dumps(doc)))
        for old in self.out.glob("checkpoint-*.*"):
            if old.name not in (doc["params"], doc.get("states")):
                old.unlink()

    def peek(self) -> tuple[int, int]:
        """(next epoch, iteration) of the checkpoint; (0, 0) when there is none."""
        meta = self.out / "checkpoint.json"
        if not meta.is_file():
            return 0, 0
        doc = json.loads(meta.read_text())
        return doc["epoch"] + 1, doc["iteration"]

    def load(self, net: Any, trainer: Any, states: bool = True) -> tuple[int, int, list[dict]]:
        """(next epoch, iteration, history); (0, 0, []) when there is no checkpoint."""
        meta = self.out / "checkpoint.json"
        if not meta.is_file():
            return 0, 0, []
        doc = json.loads(meta.read_text())
        if "params" not in doc:  # written before checkpoints named their files
            doc.update(params="checkpoint.params", states="checkpoint.states")
        net.load_parameters(str(self.out / doc["params"]))
        if states:
            if "states" not in doc:
                raise InvalidInputError(
                    f"{meta} has no optimizer state (a dist_async run): resume it with dist_async"
                )
            trainer.load_states(str(self.out / doc["states"]))
        return doc["epoch"] + 1, doc["iteration"], doc["history"]


class JsonLog:
    """Append-only JSON lines."""

    def __init__(self, path: Path):
        self.path = path

    def write(self, **record: Any) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(record, default=float) + "\n")


class Progress:
    """One line per epoch; a live bar on a terminal. To stderr, so stdout stays data."""

    def __init__(self, total: int, epoch: int, epochs: int, enabled: bool = True):
        self.total, self.epoch, self.epochs = total, epoch, epochs
        self.enabled = enabled
        self.live = enabled and sys.stderr.isatty()
        self.t0 = time.perf_counter()

    def update(self, done: int, **values: float) -> None:
        if not self.live:
            return
        width = 24
        fill = int(width * done / max(1, self.total))
        text = " ".join(f"{k} {v:.4g}" for k, v in values.items())
        sys.stderr.write(
            f"\repoch {self.epoch + 1}/{self.epochs} [{'#' * fill}{'.' * (width - fill)}] "
            f"{done}/{self.total} {text}"
        )
        sys.stderr.flush()

    def close(self, **values: float) -> None:
        if not self.enabled:
            return
        text = " ".join(f"{k} {v:.4g}" for k, v in values.items())
        end = "\n" if not self.live else "\x1b[K\n"
        start = "\r" if self.live else ""
        sys.stderr.write(
            f"{start}epoch {self.epoch + 1}/{self.epochs} "
            f"{time.perf_counter() - self.t0:.1f}s {text}{end}"
        )
        sys.stderr.flush()


def prepare_output(out: str | os.PathLike[str], resume: bool) -> Path:
    path = Path(out)
    if path.exists() and any(path.iterdir()) and not resume:
        if (path / "checkpoint.json").is_file():
            raise InvalidInputError(f"{path} holds a training run: pass resume to continue it")
        raise InvalidInputError(f"{path} exists and is not empty")
    path.mkdir(parents=True, exist_ok=True)
    return path


def normalise(image_rgb: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """uint8/float HxWx3 RGB → float32 CHW normalised."""
    x = (image_rgb.astype(np.float32) - np.array(mean, np.float32)) / np.array(std, np.float32)
    return x.transpose(2, 0, 1)


def color_jitter(
    image: np.ndarray, rng: np.random.RandomState, strength: float = 0.3
) -> np.ndarray:
    """Brightness, contrast and saturation jitter, float HxWx3 in 0..255.

    In float64: NumPy's float32 reductions vary with the arrays' memory alignment, which
    would make two runs with one seed differ in the last bits."""
    x = image.astype(np.float64)
    x = x * (1 + rng.uniform(-strength, strength))
    mean = x.mean()
    x = (x - mean) * (1 + rng.uniform(-strength, strength)) + mean
    gray = x.mean(axis=2, keepdims=True)
    x = (x - gray) * (1 + rng.uniform(-strength, strength)) + gray
    return x.clip(0, 255).astype(np.float32)
