"""`t2v export`: each animated clip -> an H.264 mp4 (the media writer), a looping gif and a strip of frames.

Input: an `animate` output folder (`animate.json` + one PNG per frame per clip). Output folder
(written whole, `export.json` last), per clip `<id>.mp4`, `<id>.gif`, `<id>_strip.png` (up to
`strip` frames evenly spaced, side by side) and `<id>_first.png`.
"""
from __future__ import annotations

import json
import logging

import numpy as np

from reelworks import media, storage
from reelworks.errors import ReelworksError
from reelworks.metrics import job_metrics
from reelworks.progress import track

log = logging.getLogger(__name__)

STRIP_HEIGHT = 160  # pixels: frames taller than this are scaled down in the strip


def read_clips(uri: str) -> dict:
    """The manifest of an `animate` output folder."""
    manifest_uri = storage.join(uri, "animate.json")
    if not storage.exists(manifest_uri):
        raise ReelworksError(f"{uri} is not a `t2v animate` output (no animate.json)")
    return json.loads(storage.read_text(manifest_uri))


def load_frames(uri: str, clip: dict) -> list[np.ndarray]:
    """The frames of one clip of an `animate` output, as HxWx3 uint8 RGB."""
    from reelworks.media import open_image

    return [np.asarray(open_image(storage.join(uri, name)).convert("RGB")) for name in clip["frame_files"]]


def strip_image(frames: list[np.ndarray], count: int = 8) -> np.ndarray:
    """Up to `count` evenly spaced frames side by side, scaled to at most STRIP_HEIGHT high."""
    from PIL import Image

    picks = np.unique(np.linspace(0, len(frames) - 1, min(count, len(frames))).round().astype(int))
    h, w = frames[0].shape[:2]
    scale = min(1.0, STRIP_HEIGHT / h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    tiles = [np.asarray(Image.fromarray(frames[i]).resize(size, Image.LANCZOS)) if scale < 1 else frames[i]
             for i in picks]
    gap = np.full((size[1], 2, 3), 255, np.uint8)
    parts = []
    for tile in tiles:
        parts += [tile, gap]
    return np.concatenate(parts[:-1], axis=1)


def export(clips: str, output: str, *, fps: float | None = None, gif_width: int | None = None,
           strip: int = 8, crf: int = 18) -> dict:
    """Write mp4, gif, strip and first frame for every clip of `clips`; returns the manifest.

    `fps` overrides the rate the clips were animated for (the frames are the same, only their
    timing changes); `gif_width` scales the gif down (None: full size).
    """
    source = read_clips(clips)
    if not source["clips"]:
        raise ReelworksError(f"{clips} holds no clips")
    out = []
    with job_metrics("t2v_export") as m, storage.output_dir(output) as tmp:
        for clip in track(source["clips"], "exporting", total=len(source["clips"]), unit="clip"):
            frames = load_frames(clips, clip)
            rate = float(fps or clip["fps"])
            name = clip["id"]
            with media.VideoWriter(str(tmp / f"{name}.mp4"), rate, crf=crf) as writer:
                for frame in frames:
                    writer.write(frame)
            media.write_gif(str(tmp / f"{name}.gif"), frames, rate, loop=0, width=gif_width)
            (tmp / f"{name}_strip.png").write_bytes(media.png_bytes(strip_image(frames, strip)))
            (tmp / f"{name}_first.png").write_bytes(media.png_bytes(frames[0]))
            out.append({**{k: clip[k] for k in ("id", "prompt", "seed", "kind", "model", "width", "height")
                           if k in clip},
                        "frames": len(frames), "fps": rate, "mp4": f"{name}.mp4", "gif": f"{name}.gif",
                        "strip": f"{name}_strip.png", "first_frame": f"{name}_first.png"})
            m.items.inc()
        manifest = {"clips_uri": clips, "clips": out}
        (tmp / "export.json").write_text(json.dumps(manifest, indent=2))
    log.info("%d clip(s) exported as mp4, gif and strip -> %s", len(out), output)
    return manifest
