"""Plot bot benchmark: training tokens/s and generation plots/s, batched vs one at a time.

    python bench/plots_bench.py [--steps 20] [--samples 32]

CPU: the `tiny` preset (2-layer GPT-2, 128 wide, 4096-token BPE vocabulary). GPU (when
torch.cuda.is_available()): GPT-2 124M in bf16, with the model FLOPs utilisation it
reaches (6 x parameters x tokens/s plus attention, over the GPU's peak bf16 FLOP/s).
Ratios are measured side by side in one run; absolute numbers depend on the machine.
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Dense bf16 peak FLOP/s by device name (no sparsity), for MFU.
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12, "A10": 125e12, "V100": 125e12,
             "T4": 65e12}


def train_speed(model, vocab: int, batch: int, block: int, steps: int, device, bf16: bool) -> float:
    import torch

    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")
    x = torch.randint(0, vocab, (batch, block), device=device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)

    def step():
        with autocast:
            loss = model(input_ids=x, labels=x).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(3):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch * block / (time.perf_counter() - start)


def generation_speed(model, tokenizer, n: int, batch_size: int, max_new_tokens: int, device) -> float:
    from reelworks.plots.corpus import prompt
    from reelworks.plots.generate import Sampling, sample

    # Fixed-length sampling (no early stop) so both ways generate the same number of tokens.
    sampling = Sampling(max_new_tokens=max_new_tokens)
    prompts = [prompt(genre="Horror")] * n
    model.generation_config.min_new_tokens = max_new_tokens
    sample(model, tokenizer, prompts[:batch_size], sampling, seed=0, batch_size=batch_size, device=device)  # warm-up
    start = time.perf_counter()
    sample(model, tokenizer, prompts, sampling, seed=0, batch_size=batch_size, device=device)
    return n / (time.perf_counter() - start)


def main() -> None:
    import tempfile

    import torch
    import transformers

    from reelworks.plots.models import tiny_gpt2, train_tokenizer
    from reelworks.plots.prep import prep, read_lines
    from reelworks.plots.sample import sample_movies_csv

    transformers.logging.set_verbosity_error()

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--samples", type=int, default=32)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        prep(sample_movies_csv(f"{tmp}/movies.csv", 1500), f"{tmp}/data")
        tokenizer = train_tokenizer(read_lines(f"{tmp}/data", "train.txt"), 4096)
    cpu = torch.device("cpu")
    # On a busy shared machine OMP_NUM_THREADS=1 is often several times faster for tiny models.
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads (OMP_NUM_THREADS to change)")

    model = tiny_gpt2(tokenizer, 128)
    tokens = train_speed(model, len(tokenizer), 16, 128, args.steps, cpu, bf16=False)
    print(f"[cpu tiny] training: {tokens:,.0f} tokens/s (batch 16 x 128 tokens, one process)")
    model.eval()
    batched = generation_speed(model, tokenizer, args.samples, 32, 60, cpu)
    single = generation_speed(model, tokenizer, max(args.samples // 4, 4), 1, 60, cpu)
    print(f"[cpu tiny] generation: {batched:.1f} plots/s batched (32) vs {single:.1f} one at a time "
          f"-> {batched / single:.1f}x")

    if not torch.cuda.is_available():
        print("[gpu gpt2-124M bf16] skipped: no CUDA device")
        return
    from transformers import GPT2Config, GPT2LMHeadModel

    gpu = torch.device("cuda")
    name = torch.cuda.get_device_name()
    config = GPT2Config(vocab_size=50304, n_positions=1024, n_embd=768, n_layer=12, n_head=12)  # GPT-2 124M
    model = GPT2LMHeadModel(config).to(gpu)
    params = sum(p.numel() for p in model.parameters())
    batch, block = 16, 1024
    tokens = train_speed(model, config.vocab_size, batch, block, args.steps, gpu, bf16=True)
    # PaLM-style accounting: 6N per token for the weights, 12 * layers * width * context for attention.
    flops_per_token = 6 * params + 12 * config.n_layer * config.n_embd * block
    peak = next((v for k, v in PEAK_BF16.items() if k in name), None)
    mfu = f"{tokens * flops_per_token / peak:.1%} MFU" if peak else "MFU unknown (peak FLOP/s not listed)"
    print(f"[gpu gpt2-124M bf16] {name}: training {tokens:,.0f} tokens/s (batch {batch} x {block}), {mfu}")
    model.eval().to(torch.bfloat16)
    tokenizer_gpu = tokenizer  # sampling speed does not depend on the vocabulary's contents
    model.resize_token_embeddings(len(tokenizer_gpu))
    batched = generation_speed(model, tokenizer_gpu, args.samples * 4, 64, 60, gpu)
    single = generation_speed(model, tokenizer_gpu, 8, 1, 60, gpu)
    print(f"[gpu gpt2-124M bf16] generation: {batched:.1f} plots/s batched (64) vs {single:.1f} one at a time "
          f"-> {batched / single:.1f}x")


if __name__ == "__main__":
    main()
