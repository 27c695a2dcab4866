"""Image files as the runtime takes them: 8-bit BGR whatever the file holds.

Its own module, below the runtime and the datasets (which both read images), so that
neither has to import the other."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import InvalidInputError

# leading bytes of the formats users have, to tell a damaged image from a file that is no image
_SIGNATURES = {
    b"\xff\xd8\xff": "JPEG",
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"BM": "BMP",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
    b"RIFF": "WebP",
    b"GIF8": "GIF",
}


def read_image(path: str | os.PathLike[str], color: bool = True) -> np.ndarray:
    """Decode an image file as 8-bit BGR (H, W, 3), as OpenCV's ``imread(IMREAD_COLOR)`` does,
    whatever the file holds: gray is replicated to three channels, an alpha channel is dropped
    (not composited), 16-bit samples keep their high byte (``v >> 8``), CMYK JPEGs are converted
    to BGR and the EXIF orientation is applied. With ``color=False``: the pixels as stored
    (gray, BGR or BGRA, 8- or 16-bit; EXIF orientation not applied).

    A missing, empty, truncated or corrupt file raises InvalidInputError naming it.
    """
    p = Path(path)
    if not p.is_file():
        raise InvalidInputError(f"image file not found: {p}")
    try:  # a device with the runtime alone (edgecv-runtime) may have no OpenCV
        import cv2
    except ImportError as err:
        import platform

        raise InvalidInputError(
            f"cannot decode {p}: decoding image files needs OpenCV, which this {platform.machine()} "
            f"Python cannot import ({err}); pass the image as a uint8 NumPy array (H, W, 3) in "
            "BGR order, or install opencv-python-headless"
        ) from None
    data = np.fromfile(str(p), np.uint8)
    if data.size == 0:
        raise InvalidInputError(f"cannot decode {p}: the file is empty")
    # imdecode, unlike imread, refuses a truncated JPEG instead of returning it half gray
    image = cv2.imdecode(data, cv2.IMREAD_COLOR if color else cv2.IMREAD_UNCHANGED)
    if image is None:
        head = data[:12].tobytes()
        kind = next((k for sig, k in _SIGNATURES.items() if head.startswith(sig)), None)
        if kind == "WebP" and head[8:12] != b"WEBP":
            kind = None
        raise InvalidInputError(
            f"cannot decode {p}: a truncated or corrupt {kind} file"
            if kind
            else f"cannot decode {p}: not an image file, or a format OpenCV cannot read"
        )
    return image
