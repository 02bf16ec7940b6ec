"""One prepared GPU check: `bash bench/gpu_check.sh` (one H100, offline, at most 9 minutes).

Builds every generative model reelworks runs at its REAL size from its published config with
random weights (no download: the GPU machine reaches nothing outside), runs it the way the
workflows do, and prints one table:

- per model and dtype (fp16, bf16): images or frames per second, peak GPU memory, NaN check
  (SD 1.5, SDXL, SVD-XT, LTX-Video 0.9, Wan 2.1 T2V 1.3B);
- the music-video walk (`musicvideo.interpolate.Walker`) against the stable-diffusion-videos
  loop at the same batch size and steps (SD 1.5 shapes, fp16);
- video encode frames/s (`media.VideoWriter`, 1920x1080 H.264);
- GPT-2 124M training tokens/s and MFU (the plot bot's model).

`--cpu-smoke` runs the same code with the tiny configs (diffusers' fast-test sizes, the same
builders `diffusion.build_tiny` uses) on the CPU and ends with the same table (CI runs it).

Random weights show speed, memory and dtype overflow in the architecture itself (activations
that overflow fp16 do so with random weights too, e.g. a VAE decoder's group norms), but not
the NaNs that only trained weights produce (SDXL's fp16 VAE): those are guarded in
`diffusion.load` by upcasting, and the NaN column checks that guard's output.

Expected on one H100 80 GB (an ESTIMATE, not measured: no GPU was lent when this was written):
building ~10-40 s per model on the GPU, SD 1.5 ~25 img/s at 512x512 x 20 steps, SDXL ~3 img/s
at 1024x1024 x 20 steps, SVD-XT 14 frames 576x1024 x 10 steps ~15 s per clip, LTX 49 frames
480x704 x 10 steps ~10 s per clip, Wan 1.3B 33 frames 480x832 x 10 steps ~15 s per clip,
GPT-2 124M ~150-250 k tokens/s (MFU 30-45 %); whole run 5-7 minutes.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import math
import os
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("REELWORKS_PROGRESS", "0")
sys.path.insert(0, str(Path(__file__).resolve().parent))

BUDGET_S = 9 * 60 - 30  # rows still to run when this is spent are reported as skipped
# Dense bf16/fp16 tensor-core peaks (no sparsity), from NVIDIA's data sheets, for MFU.
PEAK_TFLOPS = {"H100": 989.4, "H200": 989.4, "A100": 312.0, "L40S": 362.0, "A10": 125.0, "L4": 121.0}


@dataclass
class Row:
    model: str
    dtype: str
    work: str = ""
    rate: float | None = None
    unit: str = ""
    peak_gib: float | None = None
    nan: str = ""
    seconds: float = 0.0
    note: str = ""


@dataclass
class Check:
    device: str
    smoke: bool
    started: float = field(default_factory=time.perf_counter)
    rows: list[Row] = field(default_factory=list)

    def left(self) -> float:
        return BUDGET_S - (time.perf_counter() - self.started)

    @contextlib.contextmanager
    def row(self, model: str, dtype: str):
        """One table row: timed, peak memory reset before it, any failure written into the
        row (the check goes on), skipped when the time budget is spent."""
        import torch

        row = Row(model, dtype)
        self.rows.append(row)
        if self.left() <= 0:
            row.note = "skipped: time budget spent"
            yield None
            return
        free_memory()
        if self.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        try:
            yield row
        except Exception as exc:  # one failing model must not hide the others' figures
            row.note = f"FAILED: {type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}"
            traceback.print_exc(limit=3)
        finally:
            row.seconds = time.perf_counter() - t0
            if self.device == "cuda":
                row.peak_gib = torch.cuda.max_memory_allocated() / 2**30
            print(f"  {row.model} {row.dtype}: {format_rate(row)} {row.note}".rstrip(), flush=True)


def free_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def nan_label(images) -> str:
    array = np.asarray(images, dtype=np.float32)
    bad = int(np.isnan(array).sum())
    return "ok" if bad == 0 else f"NaN x{bad}"


def format_rate(row: Row) -> str:
    return f"{row.rate:.3g} {row.unit}" if row.rate is not None else "-"


@contextlib.contextmanager
def born_on(device: str):
    """Modules built inside are created on `device` (in fp32, as their constructors expect):
    random init of a 5B-parameter text encoder takes seconds on a GPU, minutes on the CPU.
    ("meta": shapes only, as the tests use it to check the configs against published sizes.)"""
    import torch

    with torch.device(device):
        yield


def reset_peak(device: str) -> None:
    """Peak memory counts from here: the run in its dtype, not the fp32 build before it."""
    import torch

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()


# --------------------------------------------------------------------------- real-size components
# Values from each model's published config.json (Hub: stable-diffusion-v1-5/stable-diffusion-v1-5,
# stabilityai/stable-diffusion-xl-base-1.0, stabilityai/stable-video-diffusion-img2vid-xt,
# Lightricks/LTX-Video (0.9.0), Wan-AI/Wan2.1-T2V-1.3B-Diffusers, openai-community/gpt2).


def _sd_vae(sample_size: int, cls_name: str = "AutoencoderKL", **extra):
    import diffusers

    kwargs = dict(block_out_channels=[128, 256, 512, 512], down_block_types=["DownEncoderBlock2D"] * 4,
                  latent_channels=4, layers_per_block=2, sample_size=sample_size, **extra)
    if cls_name == "AutoencoderKL":
        kwargs["up_block_types"] = ["UpDecoderBlock2D"] * 4
    return getattr(diffusers, cls_name)(**kwargs)


def _clip_text(hidden: int, layers: int, heads: int, intermediate: int, act: str, projection: int | None = None):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(hidden_size=hidden, intermediate_size=intermediate, num_attention_heads=heads,
                            num_hidden_layers=layers, hidden_act=act, vocab_size=49408, max_position_embeddings=77,
                            projection_dim=projection or hidden)
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(config)


def _t5_encoder(umt5: bool):
    """T5 v1.1 XXL's encoder (LTX), or UMT5-XXL's (Wan): 4.7-5.7 B parameters."""
    from transformers import T5Config, T5EncoderModel, UMT5Config, UMT5EncoderModel

    common = dict(d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64, feed_forward_proj="gated-gelu",
                  relative_attention_num_buckets=32, is_encoder_decoder=False, use_cache=False)
    if umt5:
        return UMT5EncoderModel(UMT5Config(vocab_size=256384, **common))
    return T5EncoderModel(T5Config(vocab_size=32128, **common))


def real_sd15(device: str = "cpu"):
    from diffusers import DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel

    from reelworks import diffusion

    with born_on(device):
        vae, text = _sd_vae(512), _clip_text(768, 12, 12, 3072, "quick_gelu")
        unet = UNet2DConditionModel(cross_attention_dim=768, sample_size=64)
    return StableDiffusionPipeline(
        vae=vae, text_encoder=text, tokenizer=diffusion.clip_tokenizer(), unet=unet,
        scheduler=DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                                set_alpha_to_one=False, steps_offset=1),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)


def real_sdxl(device: str = "cpu"):
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel

    from reelworks import diffusion

    with born_on(device):
        unet = UNet2DConditionModel(
            sample_size=128, block_out_channels=(320, 640, 1280), layers_per_block=2,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            transformer_layers_per_block=(1, 2, 10), attention_head_dim=(5, 10, 20), cross_attention_dim=2048,
            use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=256,
            projection_class_embeddings_input_dim=2816)
        vae = _sd_vae(1024, scaling_factor=0.13025, force_upcast=True)
        text, text_2 = _clip_text(768, 12, 12, 3072, "quick_gelu"), _clip_text(1280, 32, 20, 5120, "gelu", 1280)
    return StableDiffusionXLPipeline(
        vae=vae, text_encoder=text, text_encoder_2=text_2, tokenizer=diffusion.clip_tokenizer(),
        tokenizer_2=diffusion.clip_tokenizer(), unet=unet,
        scheduler=EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                         steps_offset=1, timestep_spacing="leading"))


def real_svd(device: str = "cpu"):
    from diffusers import EulerDiscreteScheduler, StableVideoDiffusionPipeline, UNetSpatioTemporalConditionModel
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from reelworks import diffusion

    with born_on(device):
        vision = CLIPVisionModelWithProjection(CLIPVisionConfig(
            hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=16, patch_size=14,
            image_size=224, projection_dim=1024, hidden_act="gelu"))
        vae = _sd_vae(768, "AutoencoderKLTemporalDecoder", force_upcast=True)
        unet = UNetSpatioTemporalConditionModel(sample_size=96, num_frames=25)
    return StableVideoDiffusionPipeline(
        vae=vae, image_encoder=vision, unet=unet,
        scheduler=EulerDiscreteScheduler(
            beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", interpolation_type="linear",
            prediction_type="v_prediction", sigma_max=700.0, sigma_min=0.002, steps_offset=1,
            timestep_spacing="leading", timestep_type="continuous", use_karras_sigmas=True),
        feature_extractor=diffusion._clip_image_processor(crop_size=224, size=224))


def real_ltx(device: str = "cpu"):
    from diffusers import AutoencoderKLLTXVideo, FlowMatchEulerDiscreteScheduler, LTXPipeline, LTXVideoTransformer3DModel

    from reelworks import diffusion

    # The classes' defaults are LTX-Video 0.9.0's config (28 layers, 32 heads x 64, 128 latent channels).
    with born_on(device):
        transformer, vae, text = LTXVideoTransformer3DModel(), AutoencoderKLLTXVideo(), _t5_encoder(umt5=False)
    return LTXPipeline(transformer=transformer, vae=vae, scheduler=FlowMatchEulerDiscreteScheduler(),
                       text_encoder=text, tokenizer=diffusion.t5_tokenizer())


def real_wan(device: str = "cpu"):
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanPipeline, WanTransformer3DModel

    from reelworks import diffusion

    with born_on(device):
        transformer = WanTransformer3DModel(num_attention_heads=12, attention_head_dim=128, ffn_dim=8960,
                                            num_layers=30)
        vae, text = AutoencoderKLWan(), _t5_encoder(umt5=True)
    return WanPipeline(transformer=transformer, vae=vae, text_encoder=text, tokenizer=diffusion.t5_tokenizer(),
                       scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0))


def place(pipe, kind: str, device: str, dtype):
    """The pipeline on `device` in `dtype`, with the dtype rules `diffusion.load` applies."""
    import diffusers
    import torch

    from reelworks import diffusion

    level = diffusers.logging.get_verbosity()
    diffusers.logging.set_verbosity_error()  # `to()` warns about the fp32 modules kept below
    try:
        pipe.to(device, dtype)
    finally:
        diffusers.logging.set_verbosity(level)
    for component in pipe.components.values():
        # What from_pretrained does: modules a model names in _keep_in_fp32_modules stay fp32.
        keep = getattr(component, "_keep_in_fp32_modules", None) or []
        if keep and isinstance(component, torch.nn.Module):
            for name, module in component.named_modules():
                if any(part in keep for part in name.split(".")):
                    module.to(torch.float32)
    # diffusion.load's own dtype rules: Wan's VAE in float32, SDXL's VAE decoding in float32.
    for name, component_dtype in diffusion.component_dtypes(kind, dtype).items():
        if name != "default":
            getattr(pipe, name).to(component_dtype)
    if kind == "sdxl":
        diffusion._upcast_sdxl_vae_to_decode(pipe)
    pipe.set_progress_bar_config(disable=True)
    return pipe


# --------------------------------------------------------------------------- the rows

@dataclass
class Setting:
    kind: str
    label: str
    build: object  # () -> pipeline at real size
    call: dict  # diffusers arguments for one timed call
    frames_per_call: int
    unit: str = "img/s"


def settings(smoke: bool) -> list[Setting]:
    from PIL import Image

    if smoke:  # the tiny builders at their native tiny sizes: the same calls, in seconds
        still = Image.new("RGB", (64, 64), (120, 80, 40))
        return [
            Setting("sd", "SD 1.5", None, dict(height=64, width=64, num_inference_steps=2, num_images_per_prompt=2), 2),
            Setting("sdxl", "SDXL", None, dict(height=64, width=64, num_inference_steps=2, num_images_per_prompt=2), 2),
            Setting("svd", "SVD-XT", None, dict(image=still, height=64, width=64, num_frames=2, num_inference_steps=1,
                                                decode_chunk_size=2), 2, "frames/s"),
            Setting("ltx", "LTX-Video", None, dict(height=32, width=32, num_frames=9, num_inference_steps=2), 9,
                    "frames/s"),
            Setting("wan", "Wan 2.1 1.3B", None, dict(height=16, width=16, num_frames=9, num_inference_steps=2), 9,
                    "frames/s"),
        ]
    still = Image.new("RGB", (1024, 576), (120, 80, 40))
    return [
        Setting("sd", "SD 1.5", real_sd15, dict(height=512, width=512, num_inference_steps=20,
                                                num_images_per_prompt=8), 8),
        Setting("sdxl", "SDXL", real_sdxl, dict(height=1024, width=1024, num_inference_steps=20,
                                                num_images_per_prompt=2), 2),
        Setting("svd", "SVD-XT", real_svd, dict(image=still, height=576, width=1024, num_frames=14,
                                                num_inference_steps=10, decode_chunk_size=8), 14, "frames/s"),
        Setting("ltx", "LTX-Video", real_ltx, dict(height=480, width=704, num_frames=49, num_inference_steps=10), 49,
                "frames/s"),
        Setting("wan", "Wan 2.1 1.3B", real_wan, dict(height=480, width=832, num_frames=33, num_inference_steps=10),
                33, "frames/s"),
    ]


def generative_rows(check: Check) -> None:
    import torch

    from reelworks import diffusion

    dtypes = [("fp32", torch.float32)] if check.smoke else [("bf16", torch.bfloat16), ("fp16", torch.float16)]
    for setting in settings(check.smoke):
        pipe = None
        for name, dtype in dtypes:
            with check.row(setting.label, name) as row:
                if row is None:
                    continue
                if pipe is None:
                    t0 = time.perf_counter()
                    if check.smoke:
                        pipe = diffusion.build_tiny(setting.kind)
                    else:
                        torch.manual_seed(0)
                        pipe = setting.build(check.device)
                    row.note = f"built in {time.perf_counter() - t0:.0f} s; "
                place(pipe, setting.kind, check.device, dtype)
                reset_peak(check.device)
                kwargs = dict(setting.call, output_type="np")
                if setting.kind != "svd":
                    kwargs["prompt"] = "a lighthouse on a cliff at dusk, film still"
                generator = torch.Generator(check.device).manual_seed(0)
                with torch.inference_mode():
                    pipe(**dict(kwargs, num_inference_steps=1), generator=generator)  # warm-up: kernels, allocator
                    sync(check.device)
                    t0 = time.perf_counter()
                    out = pipe(**kwargs, generator=generator)
                    sync(check.device)
                elapsed = time.perf_counter() - t0
                images = out.frames if hasattr(out, "frames") else out.images
                row.rate, row.unit = setting.frames_per_call / elapsed, setting.unit
                row.nan = nan_label(images)
                shape = np.asarray(images).shape
                row.work = f"{shape[-2]}x{shape[-3]}, {setting.frames_per_call} per call, " \
                           f"{kwargs['num_inference_steps']} steps"
                row.note += f"{elapsed:.1f} s per call"
        del pipe
        free_memory()


def walk_row(check: Check) -> None:
    """The music-video walk against the stable-diffusion-videos loop, same batch and steps."""
    import torch

    import musicvideo_bench as mvb
    from reelworks import diffusion

    steps, batch, frames = (2, 4, 8) if check.smoke else (20, 8, 32)
    with check.row("music-video walk vs sd-videos loop", "fp32" if check.smoke else "fp16") as row:
        if row is None:
            return
        if check.smoke:
            pipe, size = diffusion.build_tiny("sd"), 64
        else:
            torch.manual_seed(0)
            pipe = real_sd15(check.device)
            size = 512
        place(pipe, "sd", check.device, torch.float32 if check.smoke else torch.float16)
        reset_peak(check.device)
        timeline = mvb.make_timeline(fps=8.0)
        result = mvb.bench_interpolation(pipe, timeline, "walk", steps=steps, guidance=7.5, height=size, width=size,
                                         batch_size=batch, max_frames=frames, rounds=1)
        row.rate, row.unit = result["ours_fps"], "frames/s"
        row.work = f"{size}x{size}, {result['frames']} frames, batch {batch} both, {steps} steps"
        row.note = f"sd-videos loop {result['baseline_fps']:.3g} frames/s: ours {result['ratio']:.2f}x"
        del pipe


def encode_row(check: Check) -> None:
    from reelworks.media import VideoWriter

    width, height, n = (320, 180, 24) if check.smoke else (1920, 1080, 240)
    with check.row("video encode (media.VideoWriter, H.264)", "uint8") as row:
        if row is None:
            return
        y, x = np.mgrid[0:height, 0:width]
        frames = [np.dstack([((x + 7 * i) % 256).astype(np.uint8), ((y + 3 * i) % 256).astype(np.uint8),
                             ((x + y) // 4 % 256).astype(np.uint8)]) for i in range(24)]
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            with VideoWriter(str(Path(tmp) / "out.mp4"), 24) as writer:
                for i in range(n):
                    writer.write(frames[i % len(frames)])
            elapsed = time.perf_counter() - t0
        row.rate, row.unit, row.work = n / elapsed, "frames/s", f"{width}x{height}, {n} frames"


def gpt2_row(check: Check) -> None:
    """GPT-2 124M training steps (AdamW, bf16 autocast on CUDA): tokens/s and MFU, with
    flops per token = 6 N + 12 L d T (PaLM's estimate, as nanoGPT's MFU: weights, plus attention)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    if check.smoke:
        config, batch, seq, steps = GPT2Config(n_layer=2, n_embd=64, n_head=4, n_positions=128, vocab_size=1024), 4, 128, 4
    else:
        config, batch, seq, steps = GPT2Config(), 16, 1024, 30
    with check.row("GPT-2 124M training" if not check.smoke else "GPT-2 (tiny) training",
                   "fp32" if check.smoke else "bf16 autocast") as row:
        if row is None:
            return
        torch.manual_seed(0)
        model = GPT2LMHeadModel(config).to(check.device)
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=check.device == "cuda")
        tokens = torch.randint(0, config.vocab_size, (batch, seq), device=check.device)
        autocast = torch.autocast("cuda", torch.bfloat16) if check.device == "cuda" else contextlib.nullcontext()

        def step():
            with autocast:
                loss = model(input_ids=tokens, labels=tokens).loss
            loss.backward()
            loss = loss.detach()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            return loss

        for _ in range(3):
            step()  # warm-up
        sync(check.device)
        t0 = time.perf_counter()
        for _ in range(steps):
            loss = step()
        sync(check.device)
        elapsed = time.perf_counter() - t0
        row.rate, row.unit = batch * seq * steps / elapsed, "tokens/s"
        row.nan = "ok" if math.isfinite(loss.item()) else "NaN loss"
        n_params = sum(p.numel() for p in model.parameters())  # the tied LM head counted once, as nanoGPT does
        flops_per_token = 6 * n_params + 12 * config.n_layer * config.n_embd * seq
        row.work = f"batch {batch} x {seq} tokens, {steps} steps, {n_params / 1e6:.3g} M params"
        peak = next((v for k, v in PEAK_TFLOPS.items() if check.device == "cuda"
                     and k in torch.cuda.get_device_name()), None)
        achieved = row.rate * flops_per_token / 1e12
        row.note = f"{achieved:.1f} TFLOP/s" + (f", MFU {100 * achieved / peak:.0f} % of {peak:g}" if peak else
                                                ", MFU: no peak known for this device")


def print_table(check: Check, device_name: str) -> None:
    print(f"\n## reelworks GPU check: {device_name}" + (" (CPU smoke: tiny configs)" if check.smoke else ""))
    print(f"total {time.perf_counter() - check.started:.0f} s\n")
    print("| model | dtype | work | rate | peak GPU mem | NaN | s | note |")
    print("|---|---|---|---|---|---|---|---|")
    for r in check.rows:
        peak = f"{r.peak_gib:.1f} GiB" if r.peak_gib is not None else "-"
        print(f"| {r.model} | {r.dtype} | {r.work} | {format_rate(r)} | {peak} | {r.nan or '-'} | {r.seconds:.0f} | "
              f"{r.note} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-smoke", action="store_true", help="Tiny configs on the CPU (CI).")
    args = parser.parse_args()
    import torch

    from reelworks.progress import setup_logging

    setup_logging("WARNING")
    if args.cpu_smoke:
        device, device_name = "cpu", "CPU"
    elif torch.cuda.is_available():
        device, device_name = "cuda", torch.cuda.get_device_name()
        torch.backends.cuda.matmul.allow_tf32 = True
    else:
        print("error: no CUDA GPU visible; run `bash bench/gpu_check.sh --cpu-smoke` for the CPU smoke run",
              file=sys.stderr)
        return 2
    check = Check(device, args.cpu_smoke)
    for part in (generative_rows, walk_row, encode_row, gpt2_row):
        part(check)
    print_table(check, device_name)
    failed = [r for r in check.rows if r.note.startswith("FAILED") or (r.nan and r.nan != "ok")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
