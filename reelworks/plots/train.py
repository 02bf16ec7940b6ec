"""`plots train`: fine-tune a causal LM (or the LSTM baseline) on `plots prep` output, data-parallel.

`train(...)` is the launcher the CLI and the component call. It checks the inputs, writes
the run's `TrainConfig` next to its checkpoints and starts the workers:

- `launcher="local"`: in this process (`nproc=1`) or `torchrun --nproc-per-node N` (gloo on
  CPU, NCCL on GPU);
- `launcher="trainjob"`: a Kubeflow Trainer v2 TrainJob (`reelworks.trainer`) of `workers`
  nodes x `gpus_per_worker` processes, running the same entry point (`python -m reelworks.plots.train`);
- `launcher="pytorchjob"`: the same as a Training Operator 1.9 PyTorchJob, for clusters not yet on Trainer v2.

Workers pack the text into `block_size` chunks and train with AdamW, warmup + cosine, gradient
accumulation, bf16 on GPU (DDP, accumulation and bf16 through `accelerate`) and optionally
`torch.compile`. They checkpoint every `checkpoint_every` steps (model, optimizer, scheduler,
RNG, data position: `reelworks.checkpoints`) and resume from the newest complete checkpoint. Rank 0 logs and pushes `reelworks_train_*` metrics and
saves the final model (`save_pretrained`, safetensors) with its tokenizer, then
`training.json` (the completion marker of the output).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from reelworks import checkpoints, storage
from reelworks.errors import ReelworksError

log = logging.getLogger("reelworks.plots.train")  # also when run as __main__ by torchrun
ARCHS = ("gpt2", "lstm")
PRESETS = ("tiny", "smollm2", "")
# Peak learning rates when none is given: from scratch, and for fine-tuning pretrained weights.
SCRATCH_LEARNING_RATE = 3e-3
FINE_TUNE_LEARNING_RATE = 1e-4
LAUNCHERS = ("local", "trainjob", "pytorchjob")
MANIFEST = "training.json"


@dataclass
class TrainConfig:
    data: str
    output: str
    checkpoint_dir: str = ""  # default: {output}/checkpoints
    arch: str = "gpt2"
    preset: str = "tiny"  # "tiny": small random-init GPT-2 + BPE tokenizer trained on the corpus;
    # "smollm2": fine-tune SmolLM2-135M-Instruct from the packaged GGUF; "": fine-tune `base_model`
    base_model: str = "gpt2"  # Hub id, local folder or s3:// prefix (when preset is "")
    tokenizer: str = ""  # reuse this tokenizer (e.g. the GPT-2 run's, so perplexities compare)
    vocab_size: int = 4096
    block_size: int = 128
    batch_size: int = 16  # sequences per worker per micro-step
    grad_accum: int = 1
    learning_rate: float = 0.0  # 0: SCRATCH_LEARNING_RATE, or FINE_TUNE_LEARNING_RATE for a pretrained model
    weight_decay: float = 0.01
    warmup_steps: int = 30
    max_steps: int = 0  # 0: derive from `epochs`
    epochs: float = 1.0
    checkpoint_every: int = 100
    keep_checkpoints: int = 2
    eval_every: int = 0  # 0: only at the end
    log_every: int = 20
    seed: int = 0
    compile: bool = False
    hidden: int = 256  # LSTM width
    job: str = ""  # metrics job name; default plots_train[_lstm]
    threads: int = 0  # torch CPU threads per process (0: torch's default; torchrun sets 1)

    def __post_init__(self):
        self.checkpoint_dir = self.checkpoint_dir or storage.join(self.output, "checkpoints")
        self.job = self.job or ("plots_train" if self.arch == "gpt2" else f"plots_train_{self.arch}")
        self.learning_rate = self.learning_rate or (FINE_TUNE_LEARNING_RATE if self.pretrained
                                                    else SCRATCH_LEARNING_RATE)

    @property
    def pretrained(self) -> bool:
        """Fine-tuning pretrained weights (with their tokenizer), not training from scratch."""
        return self.arch == "gpt2" and self.preset != "tiny"

    def base_model_ref(self) -> str:
        """What `from_pretrained` loads: the packaged SmolLM2 folder, or `base_model`."""
        from reelworks.plots.models import packaged_smollm2

        return packaged_smollm2() if self.preset == "smollm2" else self.base_model

    @classmethod
    def from_json(cls, text: str) -> "TrainConfig":
        data = json.loads(text)
        return cls(**{k: v for k, v in data.items() if k in {f.name for f in dataclasses.fields(cls)}})


# =========================================================================== launcher


def train(data: str, output: str, *, nproc: int = 1, launcher: str = "local", workers: int = 1,
          gpus_per_worker: int = 0, namespace: str | None = None, image: str | None = None,
          **options) -> dict:
    """Train on `plots prep` output at `data`; the model lands at `output`. Returns training.json."""
    config = TrainConfig(data=data, output=output, **options)
    _check(config, nproc, launcher)
    if launcher in ("trainjob", "pytorchjob"):
        return _run_on_cluster(config, launcher, workers, gpus_per_worker, namespace, image)
    _check_gpus(nproc)
    config_uri = storage.join(config.checkpoint_dir, "config.json")
    storage.write_text(config_uri, json.dumps(dataclasses.asdict(config), indent=2))
    if nproc == 1:
        run_worker(config)
    else:
        _run_torchrun(config_uri, nproc)
    return json.loads(storage.read_text(storage.join(output, MANIFEST)))


def _check(config: TrainConfig, nproc: int, launcher: str) -> None:
    from reelworks.plots.models import check_base_model, load_tokenizer

    if config.arch not in ARCHS:
        raise ReelworksError(f"unknown --arch {config.arch!r}; expected one of {', '.join(ARCHS)}")
    if config.preset not in PRESETS:
        raise ReelworksError(f"unknown --preset {config.preset!r}; expected 'tiny', 'smollm2' or '' "
                             "(fine-tune --base-model)")
    if launcher not in LAUNCHERS:
        raise ReelworksError(f"unknown launcher {launcher!r}; expected one of {', '.join(LAUNCHERS)}")
    if nproc < 1:
        raise ReelworksError(f"--nproc must be at least 1, got {nproc}")
    for name in ("block_size", "batch_size", "grad_accum", "checkpoint_every", "log_every"):
        if getattr(config, name) < 1:
            raise ReelworksError(f"--{name.replace('_', '-')} must be at least 1")
    if not storage.exists(storage.join(config.data, "prep.json")):
        raise ReelworksError(f"{config.data} is not a complete `plots prep` output (no prep.json)")
    if config.tokenizer:
        load_tokenizer(config.tokenizer)
    elif config.pretrained:
        check_base_model(config.base_model_ref())


def _check_gpus(nproc: int) -> None:
    """Each process takes the GPU of its local rank: more processes than GPUs would fail on
    `cuda:N` after the data was loaded, so refuse before starting any."""
    import torch

    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if visible and nproc > visible:
        raise ReelworksError(f"--nproc {nproc} needs {nproc} GPUs, this machine has {visible}: "
                             f"ask the step for {nproc} GPUs (kubeflow.on_gpu) or lower --nproc")


def _run_torchrun(config_uri: str, nproc: int) -> None:
    """torchrun on this machine; its output is passed through and its `error:` line kept."""
    # --standalone: a rendezvous store on localhost whose port torchrun binds itself (port 0), so no
    # port picked here can be taken by another process before torchrun gets to it.
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               "-m", "reelworks.plots.train", "--config", config_uri]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}
    log.info("starting %d training processes: %s", nproc, " ".join(command[2:]))
    error = ""
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) as proc:
        for line in proc.stdout:
            sys.stderr.write(line)
            if line.startswith("error: "):
                error = line[len("error: "):].strip()
        code = proc.wait()
    if code != 0:
        raise ReelworksError(error or f"training failed: torchrun exited with {code} (see the log above)")


def _run_on_cluster(config: TrainConfig, launcher: str, workers: int, gpus: int, namespace: str | None,
                    image: str | None) -> dict:
    """Run the workers as a Kubeflow Trainer TrainJob (or a Training Operator PyTorchJob);
    inputs and outputs must be on S3 for the pods to see them."""
    from reelworks import settings, trainer, training_operator

    final_output = config.output
    if not storage.is_s3(config.checkpoint_dir):
        raise ReelworksError(f"launcher {launcher} needs an s3:// checkpoint URI that the training pods can reach")
    if not storage.is_s3(config.data):  # e.g. a KFP artifact path in the launcher pod: stage it
        staged = storage.join(config.checkpoint_dir, "data")
        storage.sync_up(config.data, staged)
        config.data = staged
    if not storage.is_s3(config.output):
        config.output = storage.join(config.checkpoint_dir, "final")
    config_uri = storage.join(config.checkpoint_dir, "config.json")
    storage.write_text(config_uri, json.dumps(dataclasses.asdict(config), indent=2))
    name = training_operator.job_name(f"plots-train-{config.arch}")
    command = ["torchrun", "-m", "reelworks.plots.train", "--config", config_uri]
    env = {"TOKENIZERS_PARALLELISM": "false"}
    if launcher == "trainjob":
        trainer.run(trainer.train_job(name, image or settings.image("torch"), command, nodes=workers,
                                      gpus_per_node=gpus, env=env, namespace=namespace))
    else:
        training_operator.run(training_operator.pytorch_job(name, image or settings.image("torch"), command,
                                                            workers=workers, gpus_per_worker=gpus, env=env,
                                                            namespace=namespace))
    if config.output != final_output:
        storage.sync_down(config.output, Path(storage.parse(final_output).path))
    return json.loads(storage.read_text(storage.join(final_output, MANIFEST)))


# =========================================================================== worker


class _Data:
    """Token blocks of one split, in a deterministic per-epoch order shared by all ranks."""

    def __init__(self, ids, block_size: int, seed: int):
        import numpy as np

        n = (len(ids) - 1) // block_size
        if n < 1:
            raise ReelworksError(f"too little text for one block of {block_size} tokens: use more data "
                                 "or a smaller --block-size")
        self.blocks = np.asarray(ids[: n * block_size], dtype=np.int64).reshape(n, block_size)
        self.order = checkpoints.EpochOrder(n, seed)

    def __len__(self) -> int:
        return len(self.blocks)

    def batch(self, position: int, size: int):
        """Blocks at global stream positions [position, position+size): epochs back to back."""
        import torch

        return torch.from_numpy(self.blocks[self.order.indices(position, size)])


def _tokenize(tokenizer, lines: list[str]) -> list[int]:
    ids: list[int] = []
    for encoded in tokenizer(lines, add_special_tokens=False)["input_ids"]:
        ids.extend(encoded)
    return ids


def _tokenizer(config: TrainConfig, rank: int, barrier):
    """The run's tokenizer: given, the base model's, or BPE trained once and kept with the checkpoints."""
    from reelworks.plots.models import load_tokenizer, train_tokenizer
    from reelworks.plots.prep import read_lines

    if config.tokenizer:
        return load_tokenizer(config.tokenizer)
    if config.pretrained:
        return load_tokenizer(config.base_model_ref())
    # Trained once by rank 0 and stored with the checkpoints, so a resumed run (and every
    # other rank, on any node) uses exactly the same vocabulary.
    uri = storage.join(config.checkpoint_dir, "tokenizer")
    marker = storage.join(config.checkpoint_dir, "tokenizer.done")
    if rank == 0 and not storage.exists(marker):
        tokenizer = train_tokenizer(read_lines(config.data, "train.txt"), config.vocab_size)
        with tempfile.TemporaryDirectory() as tmp:
            tokenizer.save_pretrained(tmp)
            storage.sync_up(tmp, uri)
        storage.write_text(marker, "complete\n")
    barrier()
    with tempfile.TemporaryDirectory() as tmp:
        storage.sync_down(uri, tmp)
        return load_tokenizer(tmp)


def _build_model(config: TrainConfig, tokenizer):
    from reelworks.plots.models import lstm_class, pretrained_causal_lm, tiny_gpt2

    if config.arch == "lstm":
        return lstm_class()(len(tokenizer), hidden=config.hidden)
    if config.preset == "tiny":
        return tiny_gpt2(tokenizer, config.block_size)
    return pretrained_causal_lm(config.base_model_ref(), tokenizer)


def unigram_perplexity(train_ids, valid_ids, vocab_size: int) -> float:
    """Perplexity of add-one unigram frequencies: the floor any real language model must beat."""
    import numpy as np

    counts = np.bincount(np.asarray(train_ids), minlength=vocab_size).astype(np.float64) + 1.0
    logp = np.log(counts / counts.sum())
    return float(np.exp(-logp[np.asarray(valid_ids)].mean()))


def per_word(token_perplexity: float, tokens: int, words: int) -> float:
    """A per-token perplexity as per word of the same text: models with different tokenizers
    (a 4k BPE trained on the corpus, SmolLM2's 49k) compare only on a unit they share."""
    return math.exp(math.log(token_perplexity) * tokens / max(words, 1))


def run_worker(config: TrainConfig) -> dict | None:
    """One training process (rank from torchrun's environment, or a single process)."""
    import torch

    threads = torch.get_num_threads()
    try:
        return _run_worker(config)
    finally:
        torch.set_num_threads(threads)  # as the caller had it (a run in this process)


def _run_worker(config: TrainConfig) -> dict | None:
    import torch
    import transformers
    from accelerate import Accelerator
    from accelerate.utils import gather_object, set_seed
    from transformers import get_cosine_schedule_with_warmup

    from reelworks.metrics import JobMetrics
    from reelworks.plots.prep import read_lines
    from reelworks.progress import track

    transformers.logging.set_verbosity_error()  # packed blocks need no attention mask: no warnings about it
    cuda = torch.cuda.is_available()
    # The process group comes from torchrun's environment (gloo on CPU, NCCL on GPU); DDP,
    # skipping its all-reduce between accumulation micro-steps, and bf16 autocast on GPU come with it.
    accelerator = Accelerator(gradient_accumulation_steps=config.grad_accum, mixed_precision="bf16" if cuda else "no",
                              cpu=not cuda)
    if config.threads:  # after Accelerator(), which sets its own count on CPU without OMP_NUM_THREADS
        # Tiny models gain little from intra-op threads, and on a busy machine spinning
        # OpenMP threads are several times slower than one.
        torch.set_num_threads(config.threads)
    world, rank = accelerator.num_processes, accelerator.process_index
    # Under torchrun accelerate names the CPU "cpu:0", which safetensors rejects as a device.
    device = accelerator.device if cuda else torch.device("cpu")
    tokenizer = _tokenizer(config, rank, accelerator.wait_for_everyone)
    train_ids = _tokenize(tokenizer, read_lines(config.data, "train.txt"))
    valid_lines = read_lines(config.data, "valid.txt")
    valid_ids = _tokenize(tokenizer, valid_lines)
    valid_words = sum(len(line.split()) for line in valid_lines)  # special tokens count as text, for both
    train_data = _Data(train_ids, config.block_size, config.seed)
    valid_data = _Data(valid_ids, config.block_size, config.seed)
    per_step = config.batch_size * config.grad_accum * world  # blocks per optimizer step, all ranks
    max_steps = config.max_steps or max(1, math.ceil(config.epochs * len(train_data) / per_step))

    set_seed(config.seed)  # same initial weights on every rank
    raw_model = _build_model(config, tokenizer).to(device)
    optimizer = torch.optim.AdamW(raw_model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay,
                                  betas=(0.9, 0.95), fused=cuda)
    # Stepped by us once per optimizer step: accelerate's prepared scheduler steps once per
    # process, for data loaders it shards, which would run our schedule `world` times too fast.
    scheduler = get_cosine_schedule_with_warmup(optimizer, min(config.warmup_steps, max_steps // 2), max_steps)

    def load(folder: Path, step: int) -> dict:
        from safetensors.torch import load_model

        load_model(raw_model, str(folder / "model.safetensors"), device=str(device))
        optimizer.load_state_dict(torch.load(folder / "optimizer.pt", weights_only=True, map_location=device))
        scheduler.load_state_dict(torch.load(folder / "scheduler.pt", weights_only=True))
        rng = torch.load(folder / "rng.pt", weights_only=True)
        if rank < len(rng["cpu"]):
            torch.set_rng_state(rng["cpu"][rank])
            if cuda and rng.get("cuda"):
                torch.cuda.set_rng_state(rng["cuda"][rank])
        return json.loads((folder / "state.json").read_text())

    resumed = checkpoints.load_newest(config.checkpoint_dir, load)
    step, state = resumed if resumed else (0, {"position": 0})
    position = state["position"]
    if resumed:
        log.info("resumed from checkpoint %s (step %d of %d)", checkpoints.name(step), step, max_steps)
    chosen = gather_object([step])
    if len(set(chosen)) != 1:
        raise ReelworksError(f"ranks resumed from different checkpoints: {chosen}")

    model, optimizer = accelerator.prepare(raw_model, optimizer)
    if config.compile:  # not Accelerator(dynamo_backend=): the first run in a process would fix it for all
        model = torch.compile(model)

    def evaluate() -> float:
        model.eval()
        total = torch.zeros(2, dtype=torch.float64, device=device)
        with torch.no_grad():
            for start in range(rank * config.batch_size, len(valid_data), world * config.batch_size):
                x = torch.from_numpy(valid_data.blocks[start:start + config.batch_size]).to(device)
                total += torch.tensor([model(input_ids=x, labels=x).loss.item() * len(x), len(x)],
                                      dtype=torch.float64, device=device)
        total = accelerator.reduce(total, "sum")
        model.train()
        return math.exp(total[0].item() / max(total[1].item(), 1.0))

    def save_checkpoint(at_step: int, at_position: int) -> None:
        # Every rank's RNG (dropout), so that a resumed run draws what the uninterrupted one would.
        rng = gather_object([{"cpu": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state() if cuda else None}])
        if rank == 0:
            def write(folder: Path) -> None:
                from safetensors.torch import save_model

                save_model(raw_model, str(folder / "model.safetensors"))
                torch.save(optimizer.state_dict(), folder / "optimizer.pt")
                torch.save(scheduler.state_dict(), folder / "scheduler.pt")
                torch.save({"cpu": [r["cpu"] for r in rng], "cuda": [r["cuda"] for r in rng if cuda]},
                           folder / "rng.pt")
                (folder / "state.json").write_text(json.dumps(
                    {"step": at_step, "position": at_position, "max_steps": max_steps, "world_size": world,
                     "tokens_seen": at_position * config.block_size, "base_val_perplexity": base_ppl}))

            checkpoints.save(config.checkpoint_dir, at_step, write, keep=config.keep_checkpoints)
            log.info("checkpoint %s saved", checkpoints.name(at_step))
        accelerator.wait_for_everyone()  # nobody runs ahead while rank 0 writes: the saved state is the state of all

    metrics = JobMetrics(config.job) if rank == 0 else None
    gauges = {}
    if metrics:
        for name, doc in [("loss", "Training loss (mean over workers)"), ("learning_rate", "Learning rate"),
                          ("tokens_per_second", "Training throughput, all workers"),
                          ("val_perplexity", "Validation perplexity")]:
            gauges[name] = metrics.gauge(f"reelworks_train_{name}", doc)
        log.info("training %s (%s parameters) on %d blocks of %d tokens: %d steps of %d blocks, "
                 "world size %d, %s", config.arch, f"{sum(p.numel() for p in raw_model.parameters()):,}",
                 len(train_data), config.block_size, max_steps, per_step, world, device)

    # The pretrained model before any fine-tuning (its new special tokens untrained): the
    # figure fine-tuning must beat. Kept in the checkpoints, so a resumed run still reports it.
    base_ppl = state.get("base_val_perplexity")
    if config.pretrained and not resumed:
        base_ppl = evaluate()
        if metrics:
            log.info("validation perplexity before fine-tuning %.2f", base_ppl)
    model.train()
    tokens_per_step = per_step * config.block_size
    train_started = time.perf_counter()
    window_start, window_steps, last_push, loss_sum = time.perf_counter(), 0, 0.0, torch.zeros(1, device=device)
    steps = range(step, max_steps)
    for step in track(steps, "training", total=len(steps), unit="step") if rank == 0 else steps:
        for micro in range(config.grad_accum):
            start = position + (micro * world + rank) * config.batch_size
            x = train_data.batch(start, config.batch_size).to(device, non_blocking=True)
            with accelerator.accumulate(model):  # gradients are all-reduced on the last micro-step only
                loss = model(input_ids=x, labels=x).loss
                accelerator.backward(loss)  # of loss / grad_accum
            loss_sum += loss.detach() / config.grad_accum
        accelerator.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        position += per_step
        window_steps += 1
        done = step + 1
        if done % config.log_every == 0 or done == max_steps:
            elapsed = time.perf_counter() - window_start
            mean_loss = accelerator.reduce(loss_sum, "sum").item() / window_steps / world
            speed = window_steps * tokens_per_step / max(elapsed, 1e-9)
            if metrics:
                log.info("step %d/%d loss %.4f lr %.2e %.0f tokens/s", done, max_steps, mean_loss,
                         scheduler.get_last_lr()[0], speed)
                gauges["loss"].set(mean_loss)
                gauges["learning_rate"].set(scheduler.get_last_lr()[0])
                gauges["tokens_per_second"].set(speed)
                if time.monotonic() - last_push > 10:
                    metrics.push()
                    last_push = time.monotonic()
            window_start, window_steps, loss_sum = time.perf_counter(), 0, torch.zeros(1, device=device)
        if config.eval_every and done % config.eval_every == 0 and done < max_steps:
            ppl = evaluate()
            if metrics:
                log.info("step %d validation perplexity %.2f", done, ppl)
                gauges["val_perplexity"].set(ppl)
        if done % config.checkpoint_every == 0 or done == max_steps:
            save_checkpoint(done, position)

    train_seconds = time.perf_counter() - train_started  # this run's steps (after a resume: the rest)
    ppl = evaluate()
    result = None
    if rank == 0:
        unigram = unigram_perplexity(train_ids, valid_ids, len(tokenizer))
        gauges["val_perplexity"].set(ppl)
        metrics.gauge("reelworks_train_unigram_perplexity", "Validation perplexity of a unigram model").set(unigram)
        metrics.items.inc(max_steps * tokens_per_step)
        metrics.last_success.set(time.time())
        metrics.push()
        word_ppl = per_word(ppl, len(valid_ids), valid_words)
        log.info("validation perplexity %.2f per token, %.1f per word (unigram baseline %.2f per token)", ppl,
                 word_ppl, unigram)
        base_model = {"tiny": "", "smollm2": "SmolLM2-135M-Instruct"}.get(config.preset, config.base_model)
        result = {"arch": config.arch, "preset": config.preset, "base_model": base_model if config.pretrained else "",
                  "val_perplexity": ppl, "unigram_perplexity": unigram, "steps": max_steps,
                  "val_word_perplexity": word_ppl,
                  "unigram_word_perplexity": per_word(unigram, len(valid_ids), valid_words),
                  "base_val_perplexity": base_ppl,
                  "base_val_word_perplexity": per_word(base_ppl, len(valid_ids), valid_words) if base_ppl else None,
                  "valid_words": valid_words, "train_seconds": train_seconds,
                  "resumed_from_step": state.get("step"), "world_size": world, "device": str(device),
                  "parameters": sum(p.numel() for p in raw_model.parameters()),
                  "train_tokens": len(train_ids), "valid_tokens": len(valid_ids),
                  "tokens_seen": position * config.block_size, "block_size": config.block_size,
                  "vocab_size": len(tokenizer), "config": dataclasses.asdict(config)}
        with tempfile.TemporaryDirectory() as tmp:
            raw_model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            if config.arch == "gpt2":
                raw_model.generation_config.save_pretrained(tmp)
            storage.sync_up(tmp, config.output)
        storage.write_text(storage.join(config.output, MANIFEST), json.dumps(result, indent=2))  # last: complete
    accelerator.wait_for_everyone()
    return result


def main(argv: list[str] | None = None) -> None:
    """The torchrun / PyTorchJob entry point: `python -m reelworks.plots.train --config URI`."""
    import argparse

    from reelworks.progress import setup_logging

    parser = argparse.ArgumentParser(description="one plots training worker")
    parser.add_argument("--config", required=True, help="URI of the run's config.json")
    args = parser.parse_args(argv)
    setup_logging()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    code = 0
    try:
        run_worker(TrainConfig.from_json(storage.read_text(args.config)))
    except ReelworksError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        code = exc.exit_code
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    import torch.distributed as dist

    if dist.is_initialized():
        if code == 0:
            dist.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    # gloo can abort in its destructors at interpreter exit ("terminate called without an
    # active exception"): leave without running them.
    os._exit(code)


if __name__ == "__main__":
    main()
