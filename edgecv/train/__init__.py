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
"""

from __future__ import annotations

import json
import os
import sys
import time
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
) -> dict[str, Any]:
    """Train zoo ``model`` on ``data`` (a dataset path or object; its ``train`` split, and
    ``val`` for validation when present). ``pretrained``: start from these weights;
    ``backbone``: a classification model's ``.params`` for a detector's backbone.
    Returns the report (also written to ``out/report.json``)."""
    import mxnet as mx
    from mxnet import autograd

    from .. import zoo
    from ..evaluate import FloatModel, evaluate

    config = config or TrainConfig()
    spec = zoo.MODELS.get(model)
    train_set = _open(data, "train", spec.task)
    if val_data is None and isinstance(data, (str, os.PathLike)):
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
    if len(train_set) < config.batch_size:
        raise InvalidInputError(
            f"{len(train_set)} training samples are fewer than one batch ({config.batch_size})"
        )
    out_dir = prepare_output(out, resume)

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
    trainer = make_trainer(net, config, len(ctxs))
    checkpoint = Checkpoint(out_dir)
    start, it, history = checkpoint.load(net, trainer) if resume else (0, 0, [])
    log = JsonLog(out_dir / "log.jsonl")
    if start == 0:
        log.write(
            event="config",
            model=model,
            data=str(data),
            config=config.to_dict(),
            train_samples=len(train_set),
            val_samples=len(val_data) if val_data else 0,
        )
    # samples per epoch: images, or what the task trains on (pose: person instances)
    n_batches = config.batches_per_epoch(getattr(task, "num_samples", len(train_set)))
    schedule = LRSchedule(config, n_batches)
    if start >= config.epochs:
        raise InvalidInputError(f"the run in {out_dir} already finished its {config.epochs} epochs")

    for epoch in range(start, config.epochs):
        rng = seed_epoch(config.seed, epoch)
        task.train_mode()
        bar = Progress(n_batches, epoch, config.epochs, enabled=progress)
        t0, losses, accs = time.perf_counter(), [], []
        for b, (x, y) in enumerate(task.batches(rng, epoch)):
            lr = schedule(it)
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
            trainer.step(len(x))
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
            if log_every and it % log_every == 0:
                log.write(event="step", epoch=epoch + 1, iteration=it, loss=loss, lr=lr)
        record: dict[str, Any] = {
            "epoch": epoch + 1,
            "loss": float(np.mean(losses)),
            "lr": lr,
            "seconds": round(time.perf_counter() - t0, 2),
        }
        if accs:
            record["train_accuracy"] = float(np.mean(accs))
        if val_data is not None:
            record["val"] = task.validate(FloatModel, evaluate, val_data)
        history.append(record)
        log.write(event="epoch", **record)
        bar.close(
            **{k: v for k, v in record.items() if isinstance(v, float) and k != "lr"},
            **_headline(record.get("val")),
        )
        checkpoint.save(net, trainer, epoch, it, history)

    task.train_mode()
    weights = out_dir / f"{model}.params"
    net.collect_params().reset_ctx(mx.cpu())
    net.save_parameters(str(weights))
    zoo.classes_file(weights).write_text("\n".join(train_set.classes) + "\n")
    report = {
        "model": model,
        "data": str(data),
        "config": config.to_dict(),
        "history": history,
        "val": history[-1].get("val") if history else None,
        "weights": weights.name,
        "command": " ".join(sys.argv) if sys.argv and sys.argv[0].endswith("edgecv") else None,
    }
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
