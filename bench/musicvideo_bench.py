"""Music video benchmark (not a timed test): `python bench/musicvideo_bench.py [--frames N]`.

1. Interpolation frames/s: `musicvideo interpolate` (embeddings and noise mixed on the device
   for a whole batch, fixed-size batches, PNGs written by a thread pool) against a
   stable-diffusion-videos-style loop (one pipeline call per batch, numpy slerp per frame,
   the CUDA cache emptied per batch, synchronous PNG writes), side by side on the same
   model, steps, size, frames and batch size (`--batch-size`; on the GPU 4 and 16, each for
   both): on CPU with the tiny preset; on a GPU, when there is one, with SD-1.5-shaped
   random-init models at 512x512, fp16, 50 steps.
2. Encoding: `media.VideoWriter` against the ffmpeg CLI (frames piped as rawvideo) at the same
   x264 settings: frames/s and peak memory (VmHWM of the process doing the encoding: for the writer the
   whole Python process, for the CLI ffmpeg alone).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("REELWORKS_PROGRESS", "0")


def sd_videos_loop(pipe, timeline: dict, frames: list[tuple[int, int, float, int]], out_dir: Path, *, steps: int,
                   guidance: float, height: int, width: int, batch: int) -> int:
    """The baseline: per batch, numpy slerp per frame, one pipeline call, empty_cache,
    then each PNG saved synchronously (PIL's default compression)."""
    import torch

    from reelworks.musicvideo.interpolate import seed_noise

    device = pipe._execution_device
    kfs = timeline["keyframes"]
    with torch.no_grad():
        cond, uncond = pipe.encode_prompt([k["prompt"] for k in kfs], device, 1, True,
                                          negative_prompt=[k["negative_prompt"] for k in kfs])
    shape = (1, pipe.unet.config.in_channels, height // pipe.vae_scale_factor, width // pipe.vae_scale_factor)
    noise = [seed_noise(k["seed"], shape).numpy() for k in kfs]

    def np_slerp(t, v0, v1, dot_threshold=0.9995):
        dot = np.sum(v0 * v1 / (np.linalg.norm(v0) * np.linalg.norm(v1)))
        if np.abs(dot) > dot_threshold:
            return (1 - t) * v0 + t * v1
        theta_0 = np.arccos(dot)
        sin_theta_0 = np.sin(theta_0)
        theta_t = theta_0 * t
        return np.sin(theta_0 - theta_t) / sin_theta_0 * v0 + np.sin(theta_t) / sin_theta_0 * v1

    written = 0
    for start in range(0, len(frames), batch):
        group = frames[start:start + batch]
        embeds, negatives, latents = [], [], []
        for a, b, t, _ in group:
            embeds.append(torch.lerp(cond[a], cond[b], t))
            negatives.append(torch.lerp(uncond[a], uncond[b], t))
            latents.append(torch.from_numpy(np_slerp(t, noise[a], noise[b])).to(device, pipe.unet.dtype))
        with torch.no_grad():
            images = pipe(prompt_embeds=torch.stack(embeds), negative_prompt_embeds=torch.stack(negatives),
                          latents=torch.cat(latents), num_inference_steps=steps, guidance_scale=guidance,
                          height=height, width=width, output_type="pil").images
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        for (_, _, _, frame), image in zip(group, images):
            image.save(out_dir / f"{frame:06d}.png")
            written += 1
    return written


def bench_interpolation(pipe, timeline: dict, label: str, *, steps: int, guidance: float, height: int, width: int,
                        batch_size: int, max_frames: int, rounds: int = 3) -> dict:
    import torch

    from reelworks.musicvideo.interpolate import Walker, interpolate
    from reelworks.musicvideo.timing import frame_table

    trimmed, left = dict(timeline), max_frames
    trimmed["segments"] = []
    for segment in timeline["segments"]:
        if left <= 0:
            break
        trimmed["segments"].append(dict(segment, positions=segment["positions"][:left]))
        left -= len(trimmed["segments"][-1]["positions"])
    segments = {s["index"]: s for s in trimmed["segments"]}
    frames = [(segments[s]["a"], segments[s]["b"], p, f) for f, s, p in frame_table(trimmed)]
    with tempfile.TemporaryDirectory() as tmp:
        tl_path = Path(tmp) / "timeline.json"
        tl_path.write_text(json.dumps(trimmed))
        walker = Walker(pipe, timeline["keyframes"], steps=steps, guidance=guidance, height=height, width=width,
                        batch_size=batch_size)
        walker.render([(0, 1, 0.0)])  # warm-up (kernels, allocator)
        sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
        ours_s, base_s = [], []
        # Alternating rounds, median of each: a busy machine's drift hits both sides alike.
        for round_ in range(rounds):
            sync()
            t0 = time.perf_counter()
            out = interpolate(str(tl_path), str(Path(tmp) / f"ours{round_}"), walker=walker,
                              chunk=max(16, batch_size * 2))
            sync()
            ours_s.append(time.perf_counter() - t0)
            base_dir = Path(tmp) / f"baseline{round_}"
            base_dir.mkdir()
            t0 = time.perf_counter()
            n = sd_videos_loop(pipe, timeline, frames, base_dir, steps=steps, guidance=guidance, height=height,
                               width=width, batch=batch_size)
            sync()
            base_s.append(time.perf_counter() - t0)
        ours_s, base_s = float(np.median(ours_s)), float(np.median(base_s))
    results = {"section": label, "frames": out["frames"], "ours_fps": out["frames"] / ours_s,
               "baseline_fps": n / base_s, "batch_size": batch_size, "rounds": rounds}
    results["ratio"] = results["ours_fps"] / results["baseline_fps"]
    if torch.cuda.is_available():
        results["peak_gpu_mem_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return results


def make_timeline(fps: float) -> dict:
    from reelworks.musicvideo.plan import make_plan
    from reelworks.musicvideo.song import write_demo_song
    from reelworks.musicvideo.timing import load_timeline, timing

    root = Path(tempfile.mkdtemp(prefix="mv-bench-"))
    song = write_demo_song(str(root / "song"))
    make_plan(song["lyrics"], str(root / "plan"), use_llm=False)
    timing(song["audio"], str(root / "plan"), str(root / "timeline"), fps)
    return load_timeline(str(root / "timeline"))


def sd15_random_pipe():
    """SD-1.5-shaped random-init components (UNet 320-640-1280-1280, ViT-L/14 text encoder,
    the SD VAE) in fp16 on the GPU: the real model's cost without a download."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from reelworks import diffusion

    torch.manual_seed(0)
    unet = UNet2DConditionModel(cross_attention_dim=768, sample_size=64)
    vae = AutoencoderKL(block_out_channels=[128, 256, 512, 512], down_block_types=["DownEncoderBlock2D"] * 4,
                        up_block_types=["UpDecoderBlock2D"] * 4, latent_channels=4, layers_per_block=2,
                        sample_size=512)
    text = CLIPTextModel(CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_attention_heads=12,
                                        num_hidden_layers=12, projection_dim=768, vocab_size=49408))
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=diffusion.clip_tokenizer(), unet=unet,
                                   scheduler=DDIMScheduler(beta_start=0.00085, beta_end=0.012,
                                                           beta_schedule="scaled_linear", clip_sample=False,
                                                           set_alpha_to_one=False),
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to("cuda", torch.float16)


# --------------------------------------------------------------------------- encoding


ENCODE_CHILD = r"""
import sys, time, numpy as np
mode, path, n, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
y, x = np.mgrid[0:size, 0:size]
def frame(i):
    r = (np.sin((x + 3 * i) / 17.0) * 127 + 128).astype(np.uint8)
    g = (np.cos((y - 2 * i) / 23.0) * 127 + 128).astype(np.uint8)
    b = ((x + y + 5 * i) % 256).astype(np.uint8)
    return np.dstack([r, g, b])
def hwm_kib(pid):
    # VmHWM: the process's peak resident memory (ru_maxrss would count the forked parent's pages).
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
frames = [frame(i % 48) for i in range(48)]  # made before timing: the encoder is what is measured
t0 = time.perf_counter()
if mode == "media":
    from reelworks.media import VideoWriter
    with VideoWriter(path, 24, crf=18, preset="veryfast") as w:
        for i in range(n):
            w.write(frames[i % 48])
    rss_kib = hwm_kib("self")
else:
    import subprocess
    p = subprocess.Popen(["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{size}x{size}",
                          "-r", "24", "-i", "-", "-c:v", "libx264", "-crf", "18", "-preset", "veryfast",
                          "-pix_fmt", "yuv420p", "-movflags", "+faststart", path], stdin=subprocess.PIPE)
    for i in range(n):
        p.stdin.write(frames[i % 48].tobytes())
    rss_kib = hwm_kib(p.pid)  # ffmpeg's own peak, read while it still runs (before the final flush)
    p.stdin.close(); p.wait()
print(f"{n / (time.perf_counter() - t0):.2f} {rss_kib / 1024:.1f}")
"""


def bench_encoding(n: int, size: int) -> dict:
    out = {"frames": n, "size": size}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("media", "ffmpeg"):
            result = subprocess.run([sys.executable, "-c", ENCODE_CHILD, mode, str(Path(tmp) / f"{mode}.mp4"), str(n),
                                     str(size)], capture_output=True, text=True, check=True)
            fps, rss = result.stdout.split()
            out[f"{mode}_fps"], out[f"{mode}_peak_rss_mib"] = float(fps), float(rss)
    out["ratio"] = out["media_fps"] / out["ffmpeg_fps"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=48, help="Frames per interpolation run (CPU).")
    parser.add_argument("--gpu-frames", type=int, default=64, help="Frames per interpolation run (GPU).")
    parser.add_argument("--encode-frames", type=int, default=240)
    parser.add_argument("--encode-size", type=int, default=512)
    parser.add_argument("--skip-cpu", action="store_true")
    parser.add_argument("--batch-size", type=int, default=8, help="CPU batch size, for ours and the baseline alike.")
    args = parser.parse_args()
    import torch

    from reelworks import diffusion

    results = []
    timeline = make_timeline(fps=8.0) if not args.skip_cpu or torch.cuda.is_available() else None
    if not args.skip_cpu:
        pipe = diffusion.load("tiny", "sd", device="cpu")
        results.append(bench_interpolation(pipe, timeline, "cpu tiny 64x64, 4 steps", steps=4, guidance=7.5,
                                           height=64, width=64, batch_size=args.batch_size, max_frames=args.frames))
        print(json.dumps(results[-1]), flush=True)
    if torch.cuda.is_available():
        pipe = sd15_random_pipe()
        for batch in (4, 16):
            results.append(bench_interpolation(pipe, timeline, f"gpu {torch.cuda.get_device_name()} SD-1.5-shaped "
                                               "512x512 fp16, 50 steps", steps=50, guidance=7.5, height=512,
                                               width=512, batch_size=batch, max_frames=args.gpu_frames, rounds=1))
            print(json.dumps(results[-1]), flush=True)
    else:
        print("GPU section: skipped (no CUDA device)", flush=True)
    encoding = bench_encoding(args.encode_frames, args.encode_size)
    print(json.dumps({"section": "encoding", **encoding}), flush=True)
    print("\n| section | frames | ours frames/s | baseline frames/s | ratio |\n|---|---|---|---|---|")
    for r in results:
        print(f"| {r['section']} (batch {r['batch_size']}, both) | {r['frames']} | {r['ours_fps']:.2f} | "
              f"{r['baseline_fps']:.2f} | {r['ratio']:.2f}x |")
    print(f"| encoding {encoding['size']}px x264 crf 18 veryfast: media.VideoWriter vs ffmpeg CLI | "
          f"{encoding['frames']} | {encoding['media_fps']:.1f} | {encoding['ffmpeg_fps']:.1f} | "
          f"{encoding['ratio']:.2f}x | peak RSS {encoding['media_peak_rss_mib']:.0f} vs "
          f"{encoding['ffmpeg_peak_rss_mib']:.0f} MiB")


if __name__ == "__main__":
    main()
