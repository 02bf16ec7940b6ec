"""`plots generate`: batched sampling from a trained plot model, to JSON Lines.

Unconditional, title-prompted (`titles`) and genre-prompted (`genres`) samples; each line:

    {"title": ..., "plot": ..., "genres": [...], "finished": true, "prompt": ..., "prompt_kind": "genre",
     "model": ..., "sampling": {"temperature": ..., ...}, "seed": 17}

The run is seeded (`seed`), so the same model and arguments give the same file on the
same hardware. Runs on the GPU (bf16) when there is one.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass

from reelworks import storage
from reelworks.errors import ReelworksError
from reelworks.metrics import job_metrics
from reelworks.plots import corpus

log = logging.getLogger(__name__)


@dataclass
class Sampling:
    temperature: float = 0.9
    top_k: int = 50
    top_p: float = 0.95
    repetition_penalty: float = 1.1
    max_new_tokens: int = 120

    def check(self) -> None:
        if self.temperature <= 0:
            raise ReelworksError(f"temperature must be above 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ReelworksError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0 or self.max_new_tokens < 1 or self.repetition_penalty <= 0:
            raise ReelworksError("top_k must be >= 0, max_new_tokens >= 1, repetition_penalty > 0")


def prompts_for(n: int, titles: list[str] | None = None, genres: list[str] | None = None) -> list[tuple[str, str]]:
    """`n` (kind, prompt) pairs: cycling through the given titles, else genres, else unconditional."""
    if titles:
        return [("title", corpus.prompt(title=titles[i % len(titles)])) for i in range(n)]
    if genres:
        return [("genre", corpus.prompt(genre=genres[i % len(genres)])) for i in range(n)]
    return [("unconditional", corpus.prompt())] * n


def sample(model, tokenizer, prompts: list[str], sampling: Sampling, seed: int, batch_size: int = 32,
           device=None) -> list[str]:
    """Decoded texts (prompt included, special tokens kept) for every prompt, in batches."""
    import torch

    device = device or next(model.parameters()).device
    tokenizer.padding_side = "left"  # decoder-only models continue from the right edge
    eos = tokenizer.convert_tokens_to_ids(corpus.END)
    texts: list[str] = []
    torch.manual_seed(seed)
    for start in range(0, len(prompts), batch_size):
        batch = tokenizer(prompts[start:start + batch_size], return_tensors="pt", padding=True,
                          add_special_tokens=False).to(device)
        prompt_len = batch["input_ids"].shape[1]
        # Never past the model's context (a tiny model's is its training block size).
        context = getattr(model.config, "n_positions", None) or getattr(model.config, "max_position_embeddings", 0)
        max_new = min(sampling.max_new_tokens, context - prompt_len) if context else sampling.max_new_tokens
        if max_new < 1:
            raise ReelworksError(f"prompts of {prompt_len} tokens leave no room in the model's {context}-token context")
        with torch.inference_mode():
            out = model.generate(**batch, do_sample=True, temperature=sampling.temperature, top_k=sampling.top_k,
                                 top_p=sampling.top_p, repetition_penalty=sampling.repetition_penalty,
                                 max_new_tokens=max_new, eos_token_id=eos, pad_token_id=eos)
        for i, row in enumerate(out):
            new = row[prompt_len:].tolist()
            end = new.index(eos) + 1 if eos in new else len(new)  # keep END: it marks a finished plot
            texts.append(prompts[start + i] + tokenizer.decode(new[:end], skip_special_tokens=False))
    return texts


def generate(model_uri: str, output_uri: str, *, n: int = 100, titles: list[str] | None = None,
             genres: list[str] | None = None, seed: int = 0, batch_size: int = 32,
             sampling: Sampling | None = None) -> dict:
    """Write `n` generated plots as JSONL to `output_uri`; returns a summary."""
    import torch

    from reelworks.plots.models import load_for_generation

    sampling = sampling or Sampling()
    sampling.check()
    if n < 1 or batch_size < 1:
        raise ReelworksError("n and batch_size must be at least 1")
    with job_metrics("plots_generate") as metrics:
        model, tokenizer, arch = load_for_generation(model_uri)
        if arch != "gpt2":
            raise ReelworksError(f"{model_uri} is a {arch} model; generate samples from a GPT-2 `plots train` output")
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        model.to(device).eval()
        if device.type == "cuda":
            model.to(torch.bfloat16)
        kinds = prompts_for(n, titles, genres)
        started = time.perf_counter()
        texts = sample(model, tokenizer, [p for _, p in kinds], sampling, seed, batch_size, device)
        elapsed = time.perf_counter() - started
        lines, finished = [], 0
        for i, ((kind, prompt), text) in enumerate(zip(kinds, texts)):
            parsed = corpus.parse_example(text)
            finished += parsed.finished
            lines.append(json.dumps({"title": parsed.title, "plot": parsed.plot, "genres": parsed.genres,
                                     "finished": parsed.finished, "prompt": prompt, "prompt_kind": kind,
                                     "model": str(model_uri), "sampling": asdict(sampling), "seed": seed,
                                     "index": i}, ensure_ascii=False))
        storage.write_text(output_uri, "\n".join(lines) + "\n")
        metrics.items.inc(n)
        metrics.gauge("reelworks_plots_generated_per_second", "Plots generated per second").set(n / elapsed)
        log.info("generated %d plots in %.1f s (%.2f plots/s, %d finished) -> %s", n, elapsed, n / elapsed,
                 finished, output_uri)
        return {"samples": n, "finished": finished, "seconds": elapsed, "device": str(device)}


def read_samples(uri: str) -> list[dict]:
    rows = []
    for number, line in enumerate(storage.read_text(uri).splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except ValueError:
                raise ReelworksError(f"{uri} line {number} is not JSON: expected `plots generate` output") from None
    return rows
