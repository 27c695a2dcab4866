"""Training with edgecv's own recipes: ``train(model, data, out, config)``.

One loop for every task (MXNet Gluon, data parallel over ``config.contexts`` through a
kvstore); the task supplies batches, the loss and the validation metric. Fixed seeds give
the same loss curve twice: the data order, augmentation and initialisation draw from
per-epoch seeded generators, so a resumed run repeats the uninterrupted one.

Output folder: ``log.jsonl`` (config, then one record per logged step and per epoch),
``checkpoint.*`` after every epoch (``resume=True`` continues from it), and at the end
``<model>.params`` with its class names in ``<model>.classes.txt`` (``get_model`` /
``compile --pretrained`` rebuild the model with them) and ``report.json`` (config,
history, validation metrics).

With a ``dist_*`` kvstore the process is one worker of a job started by ``edgecv launch``
(see :mod:`edgecv.train.distributed` for the batch and learning-rate rule); worker 0
writes the output folder.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidInputError
from .common import (
    Checkpoint,
    JsonLog,
    LRSchedule,
    Progress,
    TrainConfig,
    contexts,
    make_trainer,
    prepare_output,
    seed_epoch,
)
from .distributed import StepDigests, progress_line


def _split(batch: Any, ctxs: list[Any]) -> list[Any]:
    """Per-context slices of an array or a tuple of arrays (same first dimension)."""
    import mxnet as mx
    from mxnet import gluon

    if isinstance(batch, tuple):
        parts = [_split(b, ctxs) for b in batch]
        return [tuple(p[i] for p in parts) for i in range(len(ctxs))]
    return gluon.utils.split_and_load(mx.nd.array(batch), ctxs, even_split=False)


def _open(data: Any, split: str, task: str) -> Any:
    from ..datasets import open_dataset

    if not isinstance(data, (str, os.PathLike)):
        return data
    return open_dataset(data, split, task)


def train(
    model: str,
    data: Any,
    out: str | os.PathLike[str],
    config: TrainConfig | None = None,
    resume: bool = False,
    pretrained: str | None = None,
    backbone: str | None = None,
    val_data: Any = None,
    progress: bool = True,
    log_every: int = 20,
    debug_dump: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Train zoo ``model`` on ``data`` (a dataset path or object; its ``train`` split, and
    ``val`` for validation when present). ``pretrained``: start from these weights;
    ``backbone``: a classification model's ``.params`` for a detector's backbone;
    ``debug_dump``: a folder for per-step weight digests (:class:`StepDigests`).
    Returns the report (also written to ``out/report.json``)."""
    import mxnet as mx
    from mxnet import autograd

    from .. import zoo
    from ..evaluate import FloatModel, evaluate

    config = config or TrainConfig()
    spec = zoo.MODELS.get(model)
    cluster = None
    if config.kvstore.startswith("dist"):
        from .distributed import connect

        cluster = connect(config.kvstore)
        recipe, config = config, cluster.shard(config)
        if cluster.chief:  # the resolved settings, even with --quiet
            print(cluster.describe(recipe, config), file=sys.stderr, flush=True)
    chief = cluster is None or cluster.chief
    train_set = _open(data, "train", spec.task)
    if not chief:
        val_data = None  # worker 0 validates
    elif val_data is None and isinstance(data, (str, os.PathLike)):
        try:
            val_data = _open(data, "val", spec.task)
        except InvalidInputError:
            val_data = None
    elif val_data is not None:
        val_data = _open(val_data, "val", spec.task)
    if train_set.task != spec.task:
        raise InvalidInputError(
            f"{model} is a {spec.task} model; {data} is a {train_set.task} dataset"
        )
    if len(train_set) < config.global_batch:
        raise InvalidInputError(
            f"{len(train_set)} training samples are fewer than one batch ({config.global_batch})"
        )
    out_dir = prepare_output(out, resume) if chief else Path(out)

    if config.deterministic:
        import ctypes

        mx.base._LIB.MXSetNumOMPThreads(ctypes.c_int(1))
    mx.random.seed(config.seed)
    np.random.seed(config.seed)
    net = zoo.get_model(model, pretrained=pretrained or False, classes=list(train_set.classes))
    data_cfg = spec.data if config.input_size is None else spec.data.scaled(config.input_size)
    net.edgecv_meta = zoo.ModelMeta(spec, data_cfg, tuple(train_set.classes))
    task = _make_task(spec, net, train_set, config, data_cfg)
    if backbone:
        if not hasattr(task, "load_backbone"):
            raise InvalidInputError(f"--backbone applies to detectors, not to {model}")
        task.load_backbone(backbone)

    ctxs = contexts(config.contexts)
    net.collect_params().reset_ctx(ctxs)
    # samples per epoch: images, or what the task trains on (pose: person instances)
    n_batches = config.batches_per_epoch(getattr(task, "num_samples", len(train_set)))
    schedule = LRSchedule(config, n_batches)
    checkpoint = Checkpoint(out_dir)
    # optimizer state: on the workers, except for dist_async (on the servers, not saved)
    states = cluster is None or cluster.sync
    begin = checkpoint.peek() if resume else (0, 0)
    options = None
    if cluster is not None:
        cluster.agree(*begin)  # before the first collective call of the Trainer
        options = cluster.trainer_options(schedule, begin[1])
    trainer = make_trainer(net, config, len(ctxs), cluster, options)
    start, it, history = checkpoint.load(net, trainer, states) if resume else (0, 0, [])
    log = JsonLog(out_dir / "log.jsonl") if chief else None
    if start == 0 and log:
        log.write(
            event="config",
            model=model,
            data=str(data),
            config=config.to_dict(),
            train_samples=len(train_set),
            val_samples=len(val_data) if val_data else 0,
        )
    if start >= config.epochs:
        raise InvalidInputError(f"the run in {out_dir} already finished its {config.epochs} epochs")
    rank = cluster.rank if cluster else 0
    dump = StepDigests(debug_dump, rank) if debug_dump else None
    # under `edgecv launch`, each step's record for the launcher's merged progress line
    report_steps = cluster is not None and os.environ.get("EDGECV_LAUNCH_PROGRESS") == "1"
    # gradients are summed over the workers (sync): normalise by the global batch
    step_scale = config.num_parts if cluster is not None and cluster.sync else 1

    for epoch in range(start, config.epochs):
        rng = seed_epoch(config.seed, epoch)
        task.train_mode()
        bar = Progress(n_batches, epoch, config.epochs, enabled=progress)
        if cluster is not None and epoch == start:
            # later epochs: the first step waits for worker 0's validation and checkpoint,
            # which may take longer than a step; the watchdog is armed again after it
            cluster.step_done(epoch, 0)
        t0, losses, accs = time.perf_counter(), [], []
        for b, (x, y) in enumerate(task.batches(rng, epoch)):
            lr = schedule(it)
            if states:  # dist_async: the servers' optimizer runs the schedule
                trainer.set_learning_rate(lr)
            xs, ys = _split(x, ctxs), _split(y, ctxs)
            with autograd.record():
                outs = [net(xi) for xi in xs]
                ls = [task.losses(o, yi) for o, yi in zip(outs, ys, strict=True)]
            autograd.backward(ls)
            # MXNet 1.9's threaded engine can start the optimizer update while oneDNN's
            # backward still writes a gradient (measured: runs with one seed then differ
            # from the 10th step on, by 1e-7 growing to 1e-2); waiting here costs little
            mx.nd.waitall()
            if cluster is not None:
                cluster.settle(trainer)
            trainer.step(len(x) * step_scale)
            loss = float(sum(t.sum().asscalar() for t in ls) / len(x))
            if not np.isfinite(loss):
                raise InvalidInputError(
                    f"training diverged at epoch {epoch + 1}, step {b + 1} (loss {loss}): lower the learning rate"
                )
            losses.append(loss)
            if hasattr(task, "batch_accuracy"):
                accs.append(
                    np.mean([task.batch_accuracy(o, yi) for o, yi in zip(outs, ys, strict=True)])
                )
            it += 1
            bar.update(b + 1, loss=float(np.mean(losses[-20:])), lr=lr)
            if log and log_every and it % log_every == 0:
                log.write(event="step", epoch=epoch + 1, iteration=it, loss=loss, lr=lr)
            if dump:
                dump.write(net, epoch=epoch + 1, step=b + 1, iteration=it, loss=loss, lr=lr)
            if cluster is not None:
                cluster.step_done(epoch, b + 1)
                if report_steps:
                    progress_line(
                        dict(rank=rank, epoch=epoch + 1, epochs=config.epochs, step=b + 1)
                        | dict(steps=n_batches, loss=loss, lr=lr)
                    )
        record: dict[str, Any] = {
            "epoch": epoch + 1,
            "loss": float(np.mean(losses)),
            "lr": lr,
            "seconds": round(time.perf_counter() - t0, 2),
        }
        if accs:
            record["train_accuracy"] = float(np.mean(accs))
        if cluster is not None:
            cluster.average_statistics(net)
            cluster.pause_watchdog()  # worker 0 validates; the others wait for it
        if val_data is not None:
            record["val"] = task.validate(FloatModel, evaluate, val_data)
        history.append(record)
        bar.close(
            **{k: v for k, v in record.items() if isinstance(v, float) and k != "lr"},
            **_headline(record.get("val")),
        )
        if log:
            log.write(event="epoch", **record)
            checkpoint.save(net, trainer, epoch, it, history, states)

    task.train_mode()
    report = {
        "model": model,
        "data": str(data),
        "config": config.to_dict(),
        "history": history,
        "val": history[-1].get("val") if history else None,
        "weights": f"{model}.params",
        "command": " ".join(sys.argv) if sys.argv and sys.argv[0].endswith("edgecv") else None,
    }
    if not chief:
        return report  # worker 0 writes the weights and the report
    weights = out_dir / f"{model}.params"
    net.collect_params().reset_ctx(mx.cpu())
    net.save_parameters(str(weights))
    zoo.classes_file(weights).write_text("\n".join(train_set.classes) + "\n")
    (out_dir / "report.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
    return report


def _make_task(spec: Any, net: Any, train_set: Any, config: TrainConfig, data_cfg: Any) -> Any:
    """The task object the shared loop drives: batches, losses, validation."""
    if spec.task == "classification":
        from .classification import ClassificationTask

        return ClassificationTask(net, train_set, config, data_cfg)
    if spec.family == "yolo3":
        from .detection import YoloTask

        return YoloTask(net, train_set, config, data_cfg)
    if spec.family == "ssd":
        from .ssd import SSDTask

        return SSDTask(net, train_set, config, data_cfg)
    if spec.task == "segmentation":
        from .segmentation import SegmentationTask

        return SegmentationTask(net, train_set, config, data_cfg)
    if spec.task == "pose":
        from .pose import PoseTask

        return PoseTask(net, train_set, config, data_cfg)
    raise InvalidInputError(f"edgecv has no training recipe for {spec.family} models")


def _headline(val: dict[str, Any] | None) -> dict[str, float]:
    if not val:
        return {}
    return {k: v for k, v in val.items() if k in ("top1", "voc07_map", "mean_iou", "keypoint_ap")}


__all__ = ["TrainConfig", "train"]
