"""Benchmark: seconds per clip and peak memory of the text-to-video models.

GPU section (runs when CUDA is visible, else says so and skips): random-init models of the
real shapes, in bf16, at their usual sizes, so the compiled pipeline asks for the right GPU
and memory (pipelines/t2v.py RENDER_MEMORY):

- LTX-Video image-to-video: the 2B transformer (28 layers, 32x64 heads) and the 0.9 VAE,
  704x480, 121 frames (8k+1), 128 text tokens;
- Wan 2.1 text-to-video, 1.3B shape (30 layers, 12x128 heads, FFN 8960) and its VAE,
  832x480, 81 frames (4k+1), 512 text tokens.

The text encoders (T5-XXL / UMT5-XXL) are left out: random prompt embeddings of their width
go in, so the figures are the denoising transformer and the VAE decode (the text encoder
runs once per clip; with `offload` it is on the GPU only while it runs). Each model runs
once with 2 steps (warm-up: kernels, allocator) and then with `--steps` (timed, CUDA peak
memory from a reset).

CPU section (always): the tiny preset of every kind at its native size through the same
`diffusion.video_frames` the step uses, median of `--runs`, and the process's peak RSS.

    nice -n 5 python bench/t2v_bench.py [--steps 20] [--runs 3] [--skip-gpu]
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TINY = {"svd": (64, 64, 14), "ltx-i2v": (32, 32, 9), "animatediff": (64, 64, 16), "wan": (32, 32, 9)}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_tiny(runs: int) -> None:
    import numpy as np
    from PIL import Image

    from reelworks import diffusion
    from reelworks.t2v import animate

    print(f"CPU, tiny preset (random-init, diffusers' test sizes), median of {runs}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'kind':<12} {'size':>7} {'frames':>6} {'s/clip':>8} {'peak RSS MB':>12}")
    picture = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    for kind, (width, height, frames) in TINY.items():
        pipe = diffusion.load("tiny", kind)
        times = []
        for _ in range(runs + 1):  # the first run warms up
            start = time.perf_counter()
            video = diffusion.video_frames(
                pipe, kind, image=picture if kind in diffusion.IMAGE_TO_VIDEO_KINDS else None,
                prompt="A man chases a thief across the rooftops at night.", negative_prompt=animate.NEGATIVE_PROMPT,
                seed=0, num_frames=frames, width=width, height=height, steps=animate.TINY_STEPS,
                guidance=animate.USUAL[kind]["guidance"])
            times.append(time.perf_counter() - start)
        assert video.shape == (frames, height, width, 3), video.shape
        print(f"{kind:<12} {width}x{height:<4} {frames:>6} {statistics.median(times[1:]):>8.2f} "
              f"{_peak_rss_mb():>12.0f}")


def _ltx_i2v(device, dtype):
    import torch
    from diffusers import (AutoencoderKLLTXVideo, FlowMatchEulerDiscreteScheduler, LTXImageToVideoPipeline,
                           LTXVideoTransformer3DModel)

    with torch.device(device):
        transformer = LTXVideoTransformer3DModel()  # the defaults are LTX-Video 2B's shape
        vae = AutoencoderKLLTXVideo()               # and the 0.9 VAE's
    pipe = LTXImageToVideoPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=None,
                                   tokenizer=None, transformer=transformer)
    return pipe.to(device, dtype)


def _wan_1_3b(device, dtype):
    import torch
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanPipeline, WanTransformer3DModel

    with torch.device(device):
        transformer = WanTransformer3DModel(num_attention_heads=12, attention_head_dim=128, ffn_dim=8960,
                                            num_layers=30)  # Wan2.1-T2V-1.3B
        vae = AutoencoderKLWan()
    pipe = WanPipeline(tokenizer=None, text_encoder=None, transformer=transformer, vae=vae,
                       scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0))
    return pipe.to(device, dtype)


def gpu_section(steps: int) -> None:
    import torch
    from PIL import Image

    if not torch.cuda.is_available():
        print("GPU section skipped: no CUDA GPU visible (run on a GPU node for LTX-Video and Wan-1.3B figures)")
        return
    device, dtype = "cuda", torch.bfloat16
    print(f"GPU {torch.cuda.get_device_name(0)}, bf16, {steps} steps, random-init real-shape models")
    print(f"{'model':<22} {'size':>8} {'frames':>6} {'s/clip':>8} {'s/step':>7} {'peak GiB':>9} {'weights GiB':>11}")
    picture = Image.new("RGB", (704, 480), (90, 120, 160))
    cases = [("LTX-Video i2v (2B)", _ltx_i2v, 704, 480, 121, 128, dict(image=picture, frame_rate=25)),
             ("Wan 2.1 T2V (1.3B)", _wan_1_3b, 832, 480, 81, 512, {})]
    for name, build, width, height, frames, tokens, extra in cases:
        torch.cuda.empty_cache()
        pipe = build(device, dtype)
        pipe.set_progress_bar_config(disable=True)
        weights = sum(p.numel() * p.element_size() for p in pipe.transformer.parameters()) / 2**30
        embeds = torch.randn(1, tokens, 4096, device=device, dtype=dtype)
        kwargs = dict(prompt_embeds=embeds, negative_prompt_embeds=torch.zeros_like(embeds), height=height,
                      width=width, num_frames=frames, guidance_scale=3.0, output_type="np", **extra)
        if "image" in extra:
            mask = torch.ones(1, tokens, device=device, dtype=torch.long)
            kwargs.update(prompt_attention_mask=mask, negative_prompt_attention_mask=mask)
        pipe(num_inference_steps=2, generator=torch.Generator(device).manual_seed(0), **kwargs)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        out = pipe(num_inference_steps=steps, generator=torch.Generator(device).manual_seed(0), **kwargs)
        torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        assert out.frames[0].shape[0] == frames, out.frames[0].shape
        peak = torch.cuda.max_memory_allocated() / 2**30
        print(f"{name:<22} {width}x{height} {frames:>6} {seconds:>8.1f} {seconds / steps:>7.2f} {peak:>9.1f} "
              f"{weights:>11.1f}")
        del pipe, out
        torch.cuda.empty_cache()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="Denoising steps of the timed GPU run.")
    parser.add_argument("--runs", type=int, default=3, help="Timed runs per tiny kind on the CPU.")
    parser.add_argument("--skip-gpu", action="store_true")
    parser.add_argument("--skip-cpu", action="store_true")
    args = parser.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.WARNING)
    if not args.skip_gpu:
        gpu_section(args.steps)
    if not args.skip_cpu:
        cpu_tiny(args.runs)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
