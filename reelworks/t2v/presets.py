"""Presets: one word for the models and the size of a whole text-to-video run.

- `tiny`: the random-init tiny pipelines (`diffusion.load("tiny", kind)`) at 64x64: runs on a
  CPU in seconds, for CI and `reelworks run t2v --local` (the pictures are noise).
- `full`: Stable Diffusion 1.5 for the first frame and the kind's usual Hub pipeline
  (`animate.HUB_MODELS`) at its usual size (`animate.USUAL`), for GPU nodes.

The first frame is rendered at the video's aspect but at a size the image model was trained
for (`native_image_size`: SD 1.5 768x432 for a 1024x576 SVD clip, SDXL its 1344x768 bucket),
never at the video's size: SD 1.5 at 1024x576 repeats its subjects, and an image of another
aspect would be squashed. Explicit model and size options override the preset's.
"""
from __future__ import annotations

import math

from reelworks.errors import ReelworksError
from reelworks.t2v.animate import USUAL

PRESETS = ("tiny", "full")
SD_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
TINY_SIZE = 64
# SD 1.5 was trained at 512x512: a long side of 768 keeps one subject, a short side past 512 repeats it.
SD_LONG_SIDE, SD_SHORT_SIDE = 768, 512
# SDXL's trained aspect buckets of ~1 megapixel (SDXL paper, appendix), landscape; portraits are these turned.
SDXL_BUCKETS = ((1024, 1024), (1152, 896), (1216, 832), (1344, 768), (1536, 640))


def native_image_size(kind: str, width: int, height: int) -> tuple[int, int]:
    """(width, height) for an image model of `kind` ("sd" or "sdxl") at the aspect of width x height:
    SD 1.5 with a long side of 768 (short side at most 512), multiples of 8; SDXL its nearest
    trained bucket."""
    if width < 1 or height < 1:
        raise ReelworksError(f"size must be positive (got {width}x{height})")
    aspect = width / height
    if kind == "sdxl":
        buckets = SDXL_BUCKETS + tuple((h, w) for w, h in SDXL_BUCKETS)
        return min(buckets, key=lambda b: abs(math.log(b[0] / b[1] / aspect)))
    if kind != "sd":
        raise ReelworksError(f"unknown image model kind {kind!r}: expected sd or sdxl")
    wide = max(aspect, 1 / aspect)
    long_side, short_side = SD_LONG_SIDE, SD_LONG_SIDE / wide
    if short_side > SD_SHORT_SIDE:
        long_side, short_side = SD_SHORT_SIDE * wide, SD_SHORT_SIDE
    to8 = lambda v: max(8, round(v / 8) * 8)  # noqa: E731
    return (to8(long_side), to8(short_side)) if aspect >= 1 else (to8(short_side), to8(long_side))


def settings(preset: str, kind: str, *, image_model: str = "", video_model: str = "", width: int = 0,
             height: int = 0, image_kind: str = "sd") -> dict:
    """{"image_model", "video_model", "width", "height", "image_width", "image_height"} for `preset`
    and `kind`, overrides applied; the image size is the image model's native one at the video's
    aspect (the tiny preset renders at the video's size)."""
    if preset not in PRESETS:
        raise ReelworksError(f"unknown preset {preset!r}: expected one of {', '.join(PRESETS)}")
    if preset == "tiny":
        base = {"image_model": "tiny", "video_model": "tiny", "width": TINY_SIZE, "height": TINY_SIZE}
    else:
        base = {"image_model": SD_MODEL, "video_model": kind,
                "width": USUAL[kind]["width"], "height": USUAL[kind]["height"]}
    chosen = {"image_model": image_model or base["image_model"], "video_model": video_model or base["video_model"],
              "width": width or base["width"], "height": height or base["height"]}
    if chosen["image_model"] == "tiny":
        # The tiny pipelines draw at any multiple of 8 in seconds: no native size to respect.
        image_width, image_height = (-(-v // 8) * 8 for v in (chosen["width"], chosen["height"]))
    else:
        image_width, image_height = native_image_size(image_kind, chosen["width"], chosen["height"])
    return {**chosen, "image_width": image_width, "image_height": image_height}
