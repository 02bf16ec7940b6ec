"""Sample films for demos, tests and `reelworks run moviegoer --local` on a fresh clone.

`sample_films()` prefers the real clips under the shared data folder; without it, it
renders small synthetic films: hard cuts between distinct "set-ups" (colour, moving
shapes), so shot detection, sampling and the report all have something to find.
`dialogue_film()` builds a shot / reverse-shot film from still images (e.g. two MCU
stills alternating between wide shots), the case the scenes step looks for.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from reelworks import media
from reelworks.settings import cache_dir, shared_data_dir

log = logging.getLogger(__name__)

SHARED_FILMS = ("video/big_buck_bunny_60s_640x360.mp4", "video/pyscenedetect/testvideo.mp4")


def synthetic_film(path: str | Path, shots: int = 6, shot_s: float = 2.5, fps: float = 24, size=(320, 180),
                   seed: int = 0, keyframe_interval_s: float | None = 2.0) -> Path:
    """A film of `shots` hard-cut shots, each a different set-up with a moving square."""
    rng = np.random.default_rng(seed)
    w, h = size
    frames_per_shot = max(1, int(round(shot_s * fps)))
    yy, xx = np.mgrid[0:h, 0:w]

    def frames():
        for s in range(shots):
            base = rng.integers(20, 235, size=3)
            gradient = rng.uniform(-0.5, 0.5, size=3)
            background = np.clip(base[None, None, :] + gradient[None, None, :] * (xx[..., None] - w / 2), 0, 255)
            background = background.astype(np.uint8)
            side = int(rng.integers(h // 6, h // 3))
            colour = rng.integers(0, 255, size=3).astype(np.uint8)
            x0, y0 = int(rng.integers(0, w - side)), int(rng.integers(0, h - side))
            vx, vy = rng.integers(-3, 4, size=2)
            for i in range(frames_per_shot):
                frame = background.copy()
                x = int(np.clip(x0 + vx * i, 0, w - side))
                y = int(np.clip(y0 + vy * i, 0, h - side))
                frame[y:y + side, x:x + side] = colour
                yield frame

    return media.write_video(path, frames(), fps, keyframe_interval_s=keyframe_interval_s)


def dialogue_film(path: str | Path, stills: Sequence[np.ndarray], pattern: str, shot_s: float = 1.5,
                  fps: float = 12, size: tuple[int, int] | None = None) -> Path:
    """A film whose shots hold `stills[int(c)]` for each character c of `pattern` (e.g. "0121212").

    `size` defaults to the first still's (rounded down to even, as H.264 needs).
    """
    from PIL import Image

    w, h = size or (stills[0].shape[1] // 2 * 2, stills[0].shape[0] // 2 * 2)
    images = [np.asarray(Image.fromarray(s).convert("RGB").resize((w, h), Image.BILINEAR)) for s in stills]
    per_shot = max(1, int(round(shot_s * fps)))
    rng = np.random.default_rng(0)

    def frames():
        for c in pattern:
            still = images[int(c)].astype(np.int16)
            for _ in range(per_shot):  # a little grain, as film has: a perfectly still frame is not a shot
                yield np.clip(still + rng.integers(-2, 3, still.shape), 0, 255).astype(np.uint8)

    return media.write_video(path, frames(), fps, keyframe_interval_s=2.0)


def sample_films(count: int = 2, folder: str | Path | None = None) -> list[str]:
    """Real clips from the shared data when present, else synthetic films rendered once."""
    shared = shared_data_dir()
    real = [str(shared / name) for name in SHARED_FILMS if (shared / name).is_file()]
    if len(real) >= count:
        return real[:count]
    folder = Path(folder or cache_dir() / "sample_films")
    films = []
    for i in range(count):
        path = folder / f"sample_film_{i + 1}.mp4"
        if not path.is_file():
            log.info("rendering the synthetic sample film %s", path)
            tmp = path.with_name(f".{path.name}.part.mp4")
            synthetic_film(tmp, shots=5 + i, seed=i)
            tmp.replace(path)
        films.append(str(path))
    return films
