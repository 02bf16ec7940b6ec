"""Render presets: one name for model, size, steps and frame rate.

`tiny` runs on CPU in seconds (random-init SD at diffusers' test sizes, made locally); `sd15`
is the SD-1.5 shape the original video was made with (needs the model in the HF cache, a
local folder or an s3:// prefix, and a GPU). Explicit options override a preset's values.
"""
from __future__ import annotations

from reelworks.errors import ReelworksError

PRESETS = {
    "tiny": {"model": "tiny", "height": 64, "width": 64, "steps": 4, "guidance": 7.5, "fps": 4.0},
    "sd15": {"model": "stable-diffusion-v1-5/stable-diffusion-v1-5", "height": 512, "width": 512, "steps": 30, "guidance": 7.5,
             "fps": 12.0},
}


def resolve(preset: str, **overrides) -> dict:
    """The preset's settings with every non-empty override applied."""
    if preset not in PRESETS:
        raise ReelworksError(f"unknown preset {preset!r}: expected one of {', '.join(PRESETS)}")
    out = dict(PRESETS[preset])
    out.update({k: v for k, v in overrides.items() if v not in (None, "", 0)})
    return out
