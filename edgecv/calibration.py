"""int8 calibration: which scale each quantised layer's input gets, measured on real images.

The statistics come from the float artifact itself, run by the C++ runtime: while observing,
every float oneDNN layer records its input (min, max, and in a second pass a histogram of
|x|), keyed by the layer's content key, the key its int8 version is compiled from. So the
table measures exactly the tensors the int8 kernels will quantise, after every graph rewrite,
with no name matching between ONNX and the compiled graph.

Calibrators (how the histogram becomes a clipping threshold ``amax``):
  - ``minmax``: the largest |x| seen;
  - ``percentile``: the |x| below which ``percentile`` % of the values lie;
  - ``entropy``: the threshold whose quantised distribution is closest (KL divergence) to
    the observed one (the method TensorRT made standard).
The input is quantised with zero point 0: int8 with scale amax/127 when it can be negative,
uint8 with amax/255 when it cannot (after ReLU).

Recipes (``calibration/recipes/*.toml``, installed with the package) say per model or model
family which calibrator, how many images, and which layers stay in float.
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InvalidInputError

CALIBRATORS = ("minmax", "entropy", "percentile")
TABLE_SCHEMA = "edgecv.calibration"
TABLE_VERSION = 1
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")


@dataclass
class Recipe:
    calibrator: str = "percentile"
    images: int = 64
    percentile: float = 99.99
    bins: int = 2048
    # layers kept in float: indices in graph order, or "input" (reads the image), "output"
    # (feeds no other offloaded layer: classifier/detector heads)
    keep_float: list[str | int] = field(default_factory=list)
    source: str = "built-in default"

    def check(self) -> Recipe:
        if self.calibrator not in CALIBRATORS:
            raise InvalidInputError(
                f"unknown calibrator {self.calibrator!r} (one of {', '.join(CALIBRATORS)})"
            )
        if self.images < 1:
            raise InvalidInputError(f"calibration needs at least 1 image, not {self.images}")
        if not 50.0 < self.percentile <= 100.0:
            raise InvalidInputError(f"percentile must be in (50, 100], not {self.percentile}")
        if not 128 <= self.bins <= 1 << 16:
            raise InvalidInputError(f"histogram bins must be in [128, 65536], not {self.bins}")
        for item in self.keep_float:
            if not isinstance(item, int | str) or isinstance(item, bool):
                raise InvalidInputError(
                    f"keep_float entries are layer indices or names, not {item!r}"
                )
        return self


def recipes_dir() -> Path:
    """Installed wheels carry the recipes in ``edgecv/calibration_recipes``; a checkout has
    ``calibration/recipes``."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "calibration_recipes", here.parent / "calibration" / "recipes"):
        if candidate.is_dir():
            return candidate
    raise InvalidInputError(f"no calibration recipes next to {here}")


def load_recipe(model: str, family: str | None = None) -> Recipe:
    """The recipe for ``model``: its own file, else its family's, else ``default.toml``."""
    root = recipes_dir()
    for name in (model, family, "default"):
        if name and (root / f"{name}.toml").is_file():
            path = root / f"{name}.toml"
            try:
                data = tomllib.loads(path.read_text())
            except tomllib.TOMLDecodeError as err:
                raise InvalidInputError(f"{path}: {err}") from None
            known = set(Recipe.__dataclass_fields__) - {"source"}
            unknown = sorted(set(data) - known)
            if unknown:
                raise InvalidInputError(f"{path}: unknown keys {unknown}")
            return Recipe(**data, source=path.name).check()
    return Recipe().check()


# -- calibration data -------------------------------------------------------------------


def find_images(path: str | Path) -> list[Path]:
    """Image files under ``path`` in a fixed order: a folder (any depth: plain, or class
    folders), or a dataset root, of which the training split is taken (VOC: the images
    ImageSets/Main/train.txt lists; COCO: train/; class folders: train/), so that held-out
    images stay out of calibration."""
    root = Path(path)
    if not root.exists():
        raise InvalidInputError(f"calibration data {root} does not exist")
    if root.is_file():
        return [root]
    split = root / "ImageSets" / "Main" / "train.txt"
    if split.is_file() and (root / "JPEGImages").is_dir():  # a VOC root: its training split
        ids = [line.split()[0] for line in split.read_text().splitlines() if line.strip()]
        found = [p for i in ids for p in [root / "JPEGImages" / f"{i}.jpg"] if p.is_file()]
        if not found:
            raise InvalidInputError(f"{split} lists no images present in {root / 'JPEGImages'}")
        return found
    if (root / "annotations").is_dir() and (root / "train").is_dir():  # a COCO root
        root = root / "train"
    if (root / "train").is_dir() and (root / "val").is_dir():  # class folders with splits
        root = root / "train"
    images = sorted(
        p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
    )
    if not images:
        raise InvalidInputError(
            f"no images in {root} (looked for {', '.join(IMAGE_SUFFIXES)} at any depth)"
        )
    return images


# int8 without --calib-data calibrates on these (edgecv/data/calibration/README.md says what
# they are): scales from photos of the world in general, not of the deployment's camera
BUILTIN_SET = "built-in"


def builtin_images() -> list[Path]:
    """The small set of natural photos shipped with edgecv (calibration without data)."""
    return find_images(Path(__file__).resolve().parent / "data" / "calibration")


def builtin_warning(count: int) -> str:
    """The one line said when int8 calibrates on the built-in photos."""
    return (
        f"warning: no --calib-data: calibrating int8 on edgecv's {count} built-in photos; for "
        "scales that fit your deployment pass --calib-data DIR with images like its own "
        "(tens to hundreds, any depth)"
    )


def pick(images: list[Path], count: int, seed: int = 0) -> list[Path]:
    """``count`` images spread over the set (all of them if there are fewer), seeded."""
    if len(images) <= count:
        return images
    chosen = np.random.RandomState(seed).choice(len(images), count, replace=False)
    return [images[i] for i in sorted(chosen)]


def read_images(paths: Iterable[Path]) -> Iterable[np.ndarray]:
    from .runtime import read_image

    for p in paths:
        yield read_image(p)  # raises InvalidInputError naming a file that does not decode


# -- statistics --------------------------------------------------------------------------


def observe(
    run: Callable[[np.ndarray], Any],
    images: list[Path],
    recipe: Recipe,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[int, dict[str, Any]]:
    """Run ``run`` (a float artifact's network on one image) over ``images`` while the runtime
    observes: pass 1 finds each layer's range, pass 2 its histogram of |x| over that range."""
    from . import _runtime

    def one_pass(name: str, ranges: dict[int, float]) -> dict[int, dict[str, Any]]:
        _runtime.start_observing(ranges, recipe.bins)
        try:
            for i, image in enumerate(read_images(images)):
                run(image)
                if progress:
                    progress(name, i + 1, len(images))
        finally:
            seen = _runtime.stop_observing()
        return seen

    stats = one_pass("ranges", {})
    if not stats:
        raise InvalidInputError(
            "the float artifact has no kernel-library layers to calibrate (compiled with --kernels tvm?)"
        )
    bad = [k for k, s in stats.items() if not (math.isfinite(s["min"]) and math.isfinite(s["max"]))]
    if bad:
        raise InvalidInputError(f"{len(bad)} layers saw non-finite values during calibration")
    # histograms for every calibrator: minmax does not need them for its threshold, but the
    # per-layer sensitivity (SQNR) that the accuracy gate ranks layers by does
    ranges = {k: max(abs(s["min"]), abs(s["max"])) or 1.0 for k, s in stats.items()}
    hist = one_pass("histograms", ranges)
    for k, s in hist.items():
        stats[k]["histogram"], stats[k]["range"] = s["histogram"], s["range"]
    return stats


def percentile_amax(hist: np.ndarray, top: float, percentile: float) -> float:
    """The |x| below which ``percentile`` % of the histogram's mass lies (bin upper edge)."""
    cum = np.cumsum(hist)
    if cum[-1] <= 0:
        return top
    i = int(np.searchsorted(cum, cum[-1] * percentile / 100.0))
    return top * min(i + 1, len(hist)) / len(hist)


def entropy_amax(hist: np.ndarray, top: float, levels: int) -> float:
    """The clipping threshold minimising KL(P || Q): P the observed |x| histogram up to the
    threshold with the mass beyond it folded into its last bin (what clipping does), Q the
    histogram up to the threshold without that mass, quantised to ``levels`` levels and
    expanded back (each level's mass spread evenly over its non-empty bins)."""
    hist = np.asarray(hist, dtype=np.float64).copy()
    bins = len(hist)
    # the first bin holds ReLU's exact zeros, which every scale represents exactly; left in,
    # their spike dominates the divergence and drives the threshold far too low
    hist[0] = 0.0
    if hist.sum() <= 0 or bins <= levels:
        return top
    best, best_kl = bins, math.inf
    tail = np.cumsum(hist[::-1])[::-1]  # tail[i] = sum(hist[i:])
    for i in range(levels, bins + 1):
        kept = hist[:i]
        p = kept.copy()
        if i < bins:
            p[-1] += tail[i]
        starts = (np.arange(levels) * i) // levels
        sums = np.add.reduceat(kept, starts)
        nonzero = np.add.reduceat((kept > 0).astype(np.float64), starts)
        sizes = np.diff(np.append(starts, i))
        per_bin = np.repeat(
            np.divide(sums, nonzero, out=np.zeros_like(sums), where=nonzero > 0), sizes
        )
        q = np.where(kept > 0, per_bin, 0.0)
        mask = p > 0
        if q.sum() <= 0 or np.any(q[mask] <= 0):
            continue  # Q must cover P's support (only the folded last bin can lack it)
        pn, qn = p[mask] / p.sum(), q[mask] / q.sum()
        kl = float(np.sum(pn * np.log(pn / qn)))
        if kl < best_kl - 1e-12:
            best, best_kl = i, kl
    return top * best / bins


def layer_entry(key: int, s: dict[str, Any], recipe: Recipe) -> dict[str, Any]:
    """One table row: the layer's statistics and the input scale they give."""
    signed = s["min"] < 0
    peak = max(abs(s["min"]), abs(s["max"]))
    levels = 127 if signed else 255
    hist = np.asarray(s.get("histogram", []), dtype=np.float64)
    if recipe.calibrator == "minmax" or hist.size == 0 or peak == 0:
        amax = peak
    elif recipe.calibrator == "percentile":
        amax = percentile_amax(hist, s["range"], recipe.percentile)
    else:
        amax = entropy_amax(hist, s["range"], levels + 1)
    amax = float(amax) if amax > 0 else 1.0
    return {
        "key": f"{key:016x}",
        "order": int(s["order"]),
        "kernel": s["kernel"],
        "input_shape": list(s["shape"]),
        "min": float(s["min"]),
        "max": float(s["max"]),
        "amax": amax,
        "signed": bool(signed),
        "scale": amax / levels,
        "sqnr_db": round(sqnr_db(hist, s.get("range", 0.0), amax, levels), 2)
        if hist.size
        else None,
    }


def sqnr_db(hist: np.ndarray, top: float, amax: float, levels: int) -> float:
    """Signal to quantisation noise of a layer's input under this scale, from its |x|
    histogram: rounding noise (step²/12 per value inside the range) plus clipping error.
    The lower, the more the layer's input suffers: the sensitivity ranking of the gate."""
    if hist.size == 0 or hist.sum() <= 0 or top <= 0:
        return math.inf
    centers = (np.arange(hist.size) + 0.5) * (top / hist.size)
    signal = float(np.sum(hist * centers**2))
    step = amax / levels
    inside = centers <= amax
    noise = float(
        np.sum(hist[inside]) * step * step / 12.0
        + np.sum(hist[~inside] * (centers[~inside] - amax) ** 2)
    )
    if noise <= 0:
        return math.inf
    return 10.0 * math.log10(max(signal, 1e-30) / noise)


def make_table(
    model: str,
    input_shape: list[int],
    stats: dict[int, dict[str, Any]],
    recipe: Recipe,
    images: list[Path],
    source: str,
) -> dict[str, Any]:
    layers = sorted((layer_entry(k, s, recipe) for k, s in stats.items()), key=lambda e: e["order"])
    return {
        "schema": TABLE_SCHEMA,
        "schema_version": TABLE_VERSION,
        "model": model,
        "input_shape": list(input_shape),
        "calibrator": recipe.calibrator,
        **({"percentile": recipe.percentile} if recipe.calibrator == "percentile" else {}),
        "recipe": recipe.source,
        "images": len(images),
        "data": source,
        "layers": layers,
    }


def save_table(table: dict[str, Any], path: str | Path) -> None:
    Path(path).write_text(json.dumps(table, indent=1) + "\n")


def load_table(path: str | Path, model: str, input_shape: list[int]) -> dict[str, Any]:
    """Read a table and check that it was made for this model at this input shape."""
    p = Path(path)
    try:
        table = json.loads(p.read_text())
    except FileNotFoundError:
        raise InvalidInputError(f"calibration table {p} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InvalidInputError(f"calibration table {p} is not JSON: {err}") from None
    if not isinstance(table, dict) or table.get("schema") != TABLE_SCHEMA:
        raise InvalidInputError(f"{p} is not an edgecv calibration table")
    if table.get("schema_version") != TABLE_VERSION:
        raise InvalidInputError(
            f"{p}: calibration table version {table.get('schema_version')}, this edgecv reads {TABLE_VERSION}"
        )
    if table.get("model") != model or list(table.get("input_shape", [])) != list(input_shape):
        raise InvalidInputError(
            f"calibration table {p} is for {table.get('model')} at input {table.get('input_shape')}, "
            f"not {model} at {list(input_shape)}"
        )
    for e in table.get("layers", []):
        if not (
            isinstance(e.get("scale"), float | int) and e["scale"] > 0 and math.isfinite(e["scale"])
        ):
            raise InvalidInputError(f"{p}: layer {e.get('key')} has no valid scale")
    return table


def table_inputs(table: dict[str, Any]) -> dict[str, list[Any]]:
    """What the int8 build takes: {layer key (hex): [scale, signed]}."""
    return {e["key"]: [float(e["scale"]), bool(e["signed"])] for e in table["layers"]}
