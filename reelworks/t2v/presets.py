"""Presets: one word for the models and the size of a whole text-to-video run.

- `tiny`: the random-init tiny pipelines (`diffusion.load("tiny", kind)`) at 64x64: runs on a
  CPU in seconds, for CI and `reelworks run t2v --local` (the pictures are noise).
- `full`: Stable Diffusion 1.5 for the first frame and the kind's usual Hub pipeline
  (`animate.HUB_MODELS`) at its usual size (`animate.USUAL`), for GPU nodes.

Explicit model and size options override the preset's.
"""
from __future__ import annotations

from reelworks.errors import ReelworksError
from reelworks.t2v.animate import HUB_MODELS, USUAL

PRESETS = ("tiny", "full")
SD_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
TINY_SIZE = 64


def settings(preset: str, kind: str, *, image_model: str = "", video_model: str = "", width: int = 0,
             height: int = 0) -> dict:
    """{"image_model", "video_model", "width", "height"} for `preset` and `kind`, overrides applied."""
    if preset not in PRESETS:
        raise ReelworksError(f"unknown preset {preset!r}: expected one of {', '.join(PRESETS)}")
    if preset == "tiny":
        base = {"image_model": "tiny", "video_model": "tiny", "width": TINY_SIZE, "height": TINY_SIZE}
    else:
        if not video_model and kind not in HUB_MODELS:
            raise ReelworksError(f"preset full has no Hub pipeline for {kind}: give the video model (a folder or "
                                 "s3:// prefix holding a saved pipeline)")
        base = {"image_model": SD_MODEL, "video_model": kind if kind in HUB_MODELS else "",
                "width": USUAL[kind]["width"], "height": USUAL[kind]["height"]}
    return {"image_model": image_model or base["image_model"], "video_model": video_model or base["video_model"],
            "width": width or base["width"], "height": height or base["height"]}
