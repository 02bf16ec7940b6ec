"""Frame interpolators on real footage (not a timed test): `python bench/frame_interpolation_bench.py`.

Triplets of consecutive frames at 12 fps (every other frame of the 24 fps Big Buck Bunny clip
in ../shared/data/video): each interpolator makes the middle frame from the outer two (t = 0.5,
as when 6 fps keyframes become 12 fps), scored by PSNR and SSIM against the real middle frame,
and timed per made frame, side by side in one run. Triplets across a shot cut are left out
(nothing interpolates a cut): outer frames differing by more than CUT_MAD grey levels.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CLIP = Path(os.environ.get("REELWORKS_SHARED_DATA", ROOT.parent / "shared" / "data")) / "video" / \
    "big_buck_bunny_60s_640x360.mp4"
CUT_MAD = 40.0


def triplets(path: Path, count: int, stride: int = 2) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    from reelworks import media

    frames = [image for _, image in media.iter_frames(path)]
    out = []
    step = max(1, (len(frames) - 2 * stride) // count)
    for start in range(0, len(frames) - 2 * stride, step):
        a, mid, b = frames[start], frames[start + stride], frames[start + 2 * stride]
        if np.abs(a.astype(np.float32) - b.astype(np.float32)).mean() <= CUT_MAD:
            out.append((a, mid, b))
    return out[:count]


def main() -> None:
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    from reelworks.frame_interpolation import Blend, FlowWarp

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--triplets", type=int, default=60)
    args = parser.parse_args()
    data = triplets(CLIP, args.triplets)
    candidates = {"blend": Blend(), "flow (DIS ultrafast)": FlowWarp("ultrafast"), "flow (DIS fast)": FlowWarp("fast"),
                  "flow (DIS medium, default)": FlowWarp("medium"), "nearest frame": None}
    print(f"{len(data)} triplets of {CLIP.name} at 12 fps, {data[0][0].shape[1]}x{data[0][0].shape[0]}")
    print(f"{'interpolator':28s} {'PSNR dB':>8s} {'SSIM':>6s} {'ms/frame':>9s}")
    for name, method in candidates.items():
        psnr, ssim, seconds = [], [], 0.0
        for a, mid, b in data:
            start = time.perf_counter()
            if method is None:
                made = a
            else:
                method.prepare(a, b)
                made = method.at(0.5)
            seconds += time.perf_counter() - start
            psnr.append(peak_signal_noise_ratio(mid, made, data_range=255))
            ssim.append(structural_similarity(mid, made, channel_axis=2, data_range=255))
        print(f"{name:28s} {np.mean(psnr):8.2f} {np.mean(ssim):6.3f} {1000 * seconds / len(data):9.1f}")


if __name__ == "__main__":
    main()
