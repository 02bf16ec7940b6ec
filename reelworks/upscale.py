"""Learned 2x / 4x super-resolution of video frames (Swin2SR through transformers), tiled.

The model comes from a Hub id, a local `save_pretrained` folder or an s3:// prefix
(`reelworks.pretrained`), safetensors only. Defaults: Swin2SR classical x2 (DIV2K) for 2x and
Swin2SR real-world x4 (BSRGAN degradations, the Real-ESRGAN family's training recipe) for 4x,
both Apache-2.0. (`spandrel`'s Real-ESRGAN and `ccvfi` both import torchvision, whose PyPI wheel
needs a CUDA torch; transformers' Swin2SR runs on either build.)

A frame is cut into tiles whose origins sit on the model's window grid; each tile is
upscaled with a margin of context around it and only its core is kept, so memory is bounded by
the tile size (1080p output fits any GPU) and, wherever the margin covers the model's receptive
field, the stitched frame is the whole-frame result (tested with a small model).
"""
from __future__ import annotations

import logging

import numpy as np

from reelworks.errors import ReelworksError

log = logging.getLogger(__name__)

FACTORS = (1, 2, 4)
DEFAULT_MODELS = {2: "caidas/swin2SR-classical-sr-x2-64", 4: "caidas/swin2SR-realworld-sr-x4-64-bsrgan-psnr"}
DEFAULT_TILE = 256
DEFAULT_MARGIN = 32


def check_factor(factor: int) -> int:
    if int(factor) not in FACTORS:
        raise ReelworksError(f"--upscale must be one of {', '.join(map(str, FACTORS))}, got {factor}")
    return int(factor)


class Upscaler:
    """`upscaler(image)`: HxWx3 uint8 -> (factor H)x(factor W)x3 uint8."""

    def __init__(self, model, factor: int, *, device: str = "cpu", tile: int = DEFAULT_TILE,
                 margin: int = DEFAULT_MARGIN):
        import torch

        self.model, self.factor, self.device = model.to(device).eval(), check_factor(factor), device
        self.dtype = next(model.parameters()).dtype
        if model.config.upscale != self.factor:
            raise ReelworksError(f"the upscaler model upscales {model.config.upscale}x, not {self.factor}x")
        window = model.config.window_size
        self.tile = max(window, tile // window * window)
        self.margin = -(-margin // window) * window  # whole windows: tiles stay on the window grid
        self._torch = torch

    def _run(self, pixels: np.ndarray) -> np.ndarray:
        torch = self._torch
        x = torch.from_numpy(pixels).permute(2, 0, 1)[None].to(self.device, self.dtype) / 255.0
        with torch.no_grad():
            y = self.model(pixel_values=x).reconstruction
        return (y[0].float().clamp(0, 1).permute(1, 2, 0) * 255.0).round().byte().cpu().numpy()

    def __call__(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        f, tile, margin = self.factor, self.tile, self.margin
        if h <= tile and w <= tile:
            return self._run(image)
        out = np.empty((h * f, w * f, 3), np.uint8)
        for top in range(0, h, tile):
            for left in range(0, w, tile):
                # The core [top, bottom) x [left, right) and its context (clipped at the frame's edges).
                bottom, right = min(top + tile, h), min(left + tile, w)
                y0, x0 = max(0, top - margin), max(0, left - margin)
                y1, x1 = min(h, bottom + margin), min(w, right + margin)
                made = self._run(np.ascontiguousarray(image[y0:y1, x0:x1]))
                out[top * f:bottom * f, left * f:right * f] = made[(top - y0) * f:(bottom - y0) * f,
                                                                   (left - x0) * f:(right - x0) * f]
        return out


def load_upscaler(model: str, factor: int, *, device: str | None = None, tile: int = DEFAULT_TILE,
                  fp16: bool | None = None) -> Upscaler:
    """A Swin2SR upscaler from a Hub id, a local folder or an s3:// prefix ("" : the default
    model for `factor`); fp16 on CUDA unless told otherwise."""
    import torch
    from transformers import Swin2SRForImageSuperResolution

    from reelworks import pretrained

    factor = check_factor(factor)
    if factor == 1:
        raise ReelworksError("an upscaler for factor 1 makes no sense: leave --upscale at 1 to skip it")
    ref = model or DEFAULT_MODELS[factor]
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    half = device.startswith("cuda") if fp16 is None else fp16
    try:
        net = Swin2SRForImageSuperResolution.from_pretrained(
            pretrained.resolve(ref), use_safetensors=True, dtype=torch.float16 if half else torch.float32,
            **pretrained.hub_kwargs())
    except (OSError, ValueError) as exc:
        raise pretrained.hub_error(ref, exc) from None
    log.info("upscaler %s (%dx) on %s", ref, factor, device)
    return Upscaler(net, factor, device=device, tile=tile)
