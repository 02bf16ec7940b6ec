"""Reading one poster safely: verify, refuse decompression bombs, convert and resize.

`prep` and `predict` both go through `decode_poster`, so a poster is resized the same way
for training and for prediction.
"""
from __future__ import annotations

import numpy as np

# The original posters are 182x268; `ratio` (percent) scales both sides, as the original did.
ORIGINAL_SIZE = (182, 268)  # width, height


class PosterRejected(Exception):
    """A poster that cannot be used; `reason` is the short label it is counted under."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def size_for_ratio(ratio: float) -> tuple[int, int]:
    """(width, height) of posters at `ratio` percent of 182x268 (e.g. 30 -> 55x80)."""
    if not 5 <= ratio <= 100:
        raise ValueError(f"ratio must be between 5 and 100 (percent of 182x268), got {ratio}")
    return max(8, round(ORIGINAL_SIZE[0] * ratio / 100)), max(8, round(ORIGINAL_SIZE[1] * ratio / 100))


def decode_poster(data: bytes, size: tuple[int, int], channels: int = 3) -> np.ndarray:
    """Bytes -> uint8 array (height, width, channels) at `size` (width, height).

    Raises PosterRejected("empty" | "not_image" | "too_large" | "corrupt").
    """
    from PIL import Image

    from reelworks.media import ImageRefused, open_image

    try:
        image = open_image(data, "poster")  # the shared pixel cap, checked before decoding
    except ImageRefused as exc:
        raise PosterRejected(exc.reason, exc.detail) from None
    image = image.convert("L" if channels == 1 else "RGB")
    if image.size != tuple(size):
        image = image.resize(tuple(size), Image.Resampling.LANCZOS)
    pixels = np.asarray(image, np.uint8)
    return pixels[..., None] if channels == 1 else pixels
