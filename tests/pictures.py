"""What "the same picture" means in the tests: every value within 1 of 255.

torch promises no bit-identity across batch sizes, thread counts or CPUs: the same seed rendered
alone and in a batch (or with attention sliced, or on another CPU) may differ in the last bits of
a float, which rounds a few uint8 values 1 the other way (1 of 1920 pixels of a 48x40 tiny-SD
image on an AMD EPYC). Nobody sees that; another seed or prompt moves the picture by far more.
"""
from __future__ import annotations

import numpy as np


def difference(a, b) -> float:
    """The largest difference between two pictures of one shape, in 1/255 steps: uint8 values
    as they are, float pixels in [0, 1] scaled by 255."""
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    scale = 255.0 if a.dtype.kind == "f" else 1.0
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max() * scale)


def assert_same_picture(a, b, what: str = "") -> None:
    found = difference(a, b)
    assert found <= 1 + 1e-6, f"{what}: the pictures differ by up to {found:.2f} of 255"
