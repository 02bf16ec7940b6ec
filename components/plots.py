"""Kubeflow components of the plot bot: each takes its inputs, calls one `reelworks.plots`
function and writes its outputs (KFP ships only the function source: imports go inside)."""
from kfp.dsl import HTML, Dataset, Input, Markdown, Metrics, Model, Output

from reelworks.kubeflow import component


@component("cpu")
def prep(input_uri: str, data: Output[Dataset], report_md: Output[Markdown], report_html: Output[HTML],
         metrics: Output[Metrics], columns: str = "", encoding: str = "", min_year: int = 0, max_year: int = 0,
         genres: str = "", max_rows: int = 0):
    """Clean a movies CSV into training text, validation split, real titles and an EDA report."""
    from reelworks.plots.prep import prep as run

    report = run(input_uri, data.path, columns=columns or None, encoding=encoding or None,
                 min_year=min_year or None, max_year=max_year or None,
                 genres=[g.strip() for g in genres.split(",") if g.strip()], max_rows=max_rows or None)
    report.to_kfp(markdown=report_md, html_output=report_html, metrics=metrics)


@component("torch")
def train(data: Input[Dataset], model: Output[Model], metrics: Output[Metrics], preset: str = "tiny",
          base_model: str = "gpt2", nproc: int = 1, launcher: str = "local", workers: int = 1,
          gpus_per_worker: int = 1, checkpoint_uri: str = "", max_steps: int = 0, epochs: float = 1.0,
          block_size: int = 128, batch_size: int = 16, grad_accum: int = 1, learning_rate: float = 0.0,
          checkpoint_every: int = 100, seed: int = 0):
    """Train GPT-2 (`tiny`) or fine-tune a pretrained LM (`smollm2`, `base_model`) data-parallel
    (torchrun here, or a PyTorchJob); resumes from `checkpoint_uri`. Learning rate 0: the preset's."""
    from reelworks.plots.train import train as run

    result = run(data.path, model.path, arch="gpt2", preset=preset, base_model=base_model, nproc=nproc,
                 launcher=launcher, workers=workers, gpus_per_worker=gpus_per_worker,
                 checkpoint_dir=f"{checkpoint_uri.rstrip('/')}/gpt2" if checkpoint_uri else "",
                 max_steps=max_steps, epochs=epochs, block_size=block_size, batch_size=batch_size,
                 grad_accum=grad_accum, learning_rate=learning_rate, checkpoint_every=checkpoint_every, seed=seed)
    metrics.log_metric("val_perplexity", result["val_perplexity"])
    metrics.log_metric("unigram_perplexity", result["unigram_perplexity"])


@component("torch")
def train_lstm(data: Input[Dataset], tokenizer_model: Input[Model], model: Output[Model], metrics: Output[Metrics],
               nproc: int = 1, checkpoint_uri: str = "", max_steps: int = 0, epochs: float = 1.0,
               block_size: int = 128, batch_size: int = 16, learning_rate: float = 0.0,
               checkpoint_every: int = 100, seed: int = 0):
    """The LSTM baseline, with the GPT-2 model's tokenizer so that perplexities compare."""
    from reelworks.plots.train import train as run

    result = run(data.path, model.path, arch="lstm", tokenizer=tokenizer_model.path, nproc=nproc,
                 checkpoint_dir=f"{checkpoint_uri.rstrip('/')}/lstm" if checkpoint_uri else "",
                 max_steps=max_steps, epochs=epochs, block_size=block_size, batch_size=batch_size,
                 learning_rate=learning_rate, checkpoint_every=checkpoint_every, seed=seed)
    metrics.log_metric("val_perplexity", result["val_perplexity"])


@component("torch")
def generate(model: Input[Model], samples: Output[Dataset], n: int = 200, genres: str = "", titles: str = "",
             temperature: float = 0.9, top_k: int = 50, top_p: float = 0.95, repetition_penalty: float = 1.1,
             max_new_tokens: int = 120, batch_size: int = 32, seed: int = 0):
    """Sample plots (genre- or title-prompted when given, else unconditional) to JSON Lines."""
    from reelworks.plots.generate import Sampling
    from reelworks.plots.generate import generate as run

    run(model.path, samples.path, n=n, seed=seed, batch_size=batch_size,
        titles=[t.strip() for t in titles.split("|") if t.strip()],
        genres=[g.strip() for g in genres.split(",") if g.strip()],
        sampling=Sampling(temperature, top_k, top_p, repetition_penalty, max_new_tokens))


@component("cpu")
def curate(samples: Input[Dataset], data: Input[Dataset], curated: Output[Dataset], report_md: Output[Markdown],
           metrics: Output[Metrics], queue_uri: str = "", genres: str = "", keywords: str = "",
           hashtag_budget: int = 30):
    """Keep complete, tweet-sized, original plots; append them to the tweet queue at `queue_uri`."""
    import json

    from reelworks import storage
    from reelworks.plots.curate import curation_report
    from reelworks.plots.curate import curate as run

    summary = run(samples.path, data.path, curated.path, queue_uri=queue_uri or None,
                  genres=[g.strip() for g in genres.split(",") if g.strip()],
                  keywords=[k.strip() for k in keywords.split(",") if k.strip()], hashtag_budget=hashtag_budget)
    kept = [json.loads(line) for line in
            storage.read_text(f"{curated.path}/plots.jsonl").splitlines() if line.strip()]
    curation_report(summary, kept).to_kfp(markdown=report_md, metrics=metrics)


@component("cpu")
def evaluate(gpt2: Input[Model], lstm: Input[Model], curated: Input[Dataset], samples: Input[Dataset],
             report_md: Output[Markdown], report_html: Output[HTML], metrics: Output[Metrics],
             evaluation: Output[Dataset]):
    """Perplexities (GPT-2, LSTM, unigram), curation, distinct-1/2, memorisation, ten samples."""
    from reelworks.plots.evaluate import evaluate as run

    report = run(gpt2.path, curated.path, samples.path, evaluation.path, lstm_uri=lstm.path)
    report.to_kfp(markdown=report_md, html_output=report_html, metrics=metrics)
