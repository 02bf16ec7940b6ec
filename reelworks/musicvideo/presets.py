"""Render presets: one name for model, size, steps and frame rate, at each aspect ratio.

`tiny` and `tiny-sdxl` run on CPU in seconds (random-init SD / SDXL at diffusers' test sizes,
made locally); `sd15` is the SD-1.5 shape the original video was made with and `sdxl` SDXL
base 1.0 (each needs the model in the HF cache, a local folder or an s3:// prefix, and a GPU).
Explicit options override a preset's values.

Sizes are each model's native ones for the aspect ratio (SD 1.5: 512 on the short side; SDXL:
about a megapixel, the 1344x768 bucket it was trained on for 16:9), multiples of 8 (the SD
VAE's factor, and even for H.264): a frame is generated at the video's aspect ratio, never
stretched to it. 16:9 at 8-pixel steps is 1.75-1.78, hence ASPECT_TOLERANCE.
"""
from __future__ import annotations

from reelworks.errors import ReelworksError

ASPECTS = ("1:1", "16:9", "9:16")
ASPECT_TOLERANCE = 0.05  # relative: width/height within 5 % of the named ratio
SIZE_MULTIPLE = 8


def _sizes(square: int, wide: tuple[int, int]) -> dict[str, tuple[int, int]]:
    """(width, height) per aspect: the square size, the landscape one and its portrait turn."""
    return {"1:1": (square, square), "16:9": wide, "9:16": (wide[1], wide[0])}


PRESETS = {
    "tiny": {"model": "tiny", "kind": "sd", "sizes": _sizes(64, (112, 64)), "steps": 4, "guidance": 7.5,
             "fps": 4.0},
    "tiny-sdxl": {"model": "tiny", "kind": "sdxl", "sizes": _sizes(64, (112, 64)), "steps": 4, "guidance": 5.0,
                  "fps": 4.0},
    "sd15": {"model": "stable-diffusion-v1-5/stable-diffusion-v1-5", "kind": "sd", "sizes": _sizes(512, (912, 512)),
             "steps": 30, "guidance": 7.5, "fps": 12.0},
    "sdxl": {"model": "stabilityai/stable-diffusion-xl-base-1.0", "kind": "sdxl", "sizes": _sizes(1024, (1344, 768)),
             "steps": 30, "guidance": 5.0, "fps": 12.0},
}


def aspect_ratio(aspect: str) -> float:
    """width / height of "W:H" (one of ASPECTS)."""
    if aspect not in ASPECTS:
        raise ReelworksError(f"unknown aspect {aspect!r}: expected one of {', '.join(ASPECTS)}")
    w, h = aspect.split(":")
    return int(w) / int(h)


def resolve(preset: str, aspect: str | None = None, **overrides) -> dict:
    """The preset's settings (model, kind, height, width, steps, guidance, fps) with every
    non-empty override applied. `aspect` (None/"": 1:1, or what height and width say) picks the
    preset's size for that ratio; with one of height/width given the other follows the ratio
    (rounded to a multiple of 8); with both given, they must have that ratio (one clear line)."""
    if preset not in PRESETS:
        raise ReelworksError(f"unknown preset {preset!r}: expected one of {', '.join(PRESETS)}")
    out = {k: v for k, v in PRESETS[preset].items() if k != "sizes"}
    height, width = overrides.pop("height", None), overrides.pop("width", None)
    ratio = aspect_ratio(aspect) if aspect else None  # checks the name first
    out["width"], out["height"] = PRESETS[preset]["sizes"][aspect or "1:1"]
    if ratio:
        if height and not width:
            width = _multiple(height * ratio)
        elif width and not height:
            height = _multiple(width / ratio)
        elif height and width and abs(width / height / ratio - 1) > ASPECT_TOLERANCE:
            raise ReelworksError(f"--width {width} --height {height} is not {aspect}: give one of them and the "
                                 f"aspect sets the other, or drop --aspect (frames are never stretched)")
    out.update({k: v for k, v in {**overrides, "height": height, "width": width}.items() if v not in (None, "", 0)})
    return out


def render_settings(preset: str, aspect: str | None = None, **overrides) -> dict:
    """`resolve` without the frame rate: what keyframes and interpolate take."""
    settings = resolve(preset, aspect, **overrides)
    settings.pop("fps")
    return settings


def _multiple(size: float) -> int:
    return max(SIZE_MULTIPLE, int(round(size / SIZE_MULTIPLE)) * SIZE_MULTIPLE)
