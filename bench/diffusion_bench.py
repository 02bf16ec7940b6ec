"""Diffusion benchmark: images/s batched against one at a time, and SD-1.5-sized on a GPU.

    python bench/diffusion_bench.py [--images 16] [--steps 10] [--gpu-steps 20]

CPU: the `tiny` Stable Diffusion preset (reelworks.diffusion, diffusers' test sizes) at its
native 64x64, the same prompts and seeds rendered one at a time and in one batch
(`run_batched`), side by side in one run. GPU (when torch.cuda.is_available()): a random-init
pipeline of Stable Diffusion 1.5's shapes (860M-parameter UNet, its VAE, a CLIP ViT-L text
encoder) at 512x512 in fp16: images/s at batch 1, 4 and 16 and the peak GPU memory.
Absolute numbers depend on the machine; compare the ratios.
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

PROMPT = "a lighthouse on a cliff in a storm, movie poster, cinematic"


def images_per_second(pipe, n: int, batch: int, steps: int, size: int, device: str) -> float:
    import torch

    from reelworks import diffusion

    def render(seeds: list[int]) -> list:
        return list(pipe(prompt=[PROMPT] * len(seeds), generator=diffusion.generators(seeds, device), height=size,
                         width=size, num_inference_steps=steps, output_type="np").images)

    render([0] * min(batch, n))  # warm-up: kernels, allocator
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = diffusion.run_batched(render, list(range(n)), batch)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    assert len(out) == n
    return n / (time.perf_counter() - start)


def cpu_section(n: int, steps: int) -> None:
    import torch

    from reelworks import diffusion

    pipe = diffusion.load("tiny", "sd", device="cpu")
    size = pipe.unet.config.sample_size * pipe.vae_scale_factor
    print(f"CPU ({torch.get_num_threads()} threads), tiny SD preset, {size}x{size}, {steps} steps, {n} images:")
    single = images_per_second(pipe, n, 1, steps, size, "cpu")
    batched = images_per_second(pipe, n, n, steps, size, "cpu")
    print(f"  one at a time   {single:8.2f} images/s")
    print(f"  batch of {n:<6d} {batched:8.2f} images/s   ({batched / single:.2f}x one at a time)")


def sd15_pipeline(device: str):
    """Stable Diffusion 1.5's architecture with random weights, built directly on the GPU in fp16."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from reelworks import diffusion

    torch.manual_seed(0)
    with torch.device(device):
        unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768, attention_head_dim=8)
        vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
                            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                            sample_size=512)
        text = CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=768, intermediate_size=3072,
                                            num_hidden_layers=12, num_attention_heads=12, max_position_embeddings=77,
                                            bos_token_id=49406, eos_token_id=49407, pad_token_id=49407,
                                            hidden_act="quick_gelu"))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False, steps_offset=1)
    pipe = StableDiffusionPipeline(unet=unet, vae=vae, text_encoder=text, tokenizer=diffusion.clip_tokenizer(),
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.to(device, torch.float16)
    pipe.set_progress_bar_config(disable=True)
    params = sum(p.numel() for p in unet.parameters()) / 1e6
    return pipe, params


def gpu_section(steps: int) -> None:
    import torch

    if not torch.cuda.is_available():
        print("GPU: skipped (no CUDA GPU visible on this machine)")
        return
    device = "cuda"
    pipe, params = sd15_pipeline(device)
    print(f"GPU ({torch.cuda.get_device_name(0)}), SD-1.5-shaped random-init pipeline (UNet {params:.0f}M params), "
          f"512x512, fp16, {steps} steps:")
    base = None
    for batch in (1, 4, 16):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        rate = images_per_second(pipe, batch * 2, batch, steps, 512, device)
        peak = torch.cuda.max_memory_allocated() / 2**30
        base = base or rate
        print(f"  batch {batch:2d}  {rate:7.2f} images/s  ({rate / base:.2f}x batch 1)  peak {peak:6.2f} GiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--gpu-steps", type=int, default=20)
    args = parser.parse_args()
    cpu_section(args.images, args.steps)
    gpu_section(args.gpu_steps)


if __name__ == "__main__":
    main()
