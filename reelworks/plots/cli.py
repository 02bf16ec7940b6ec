"""`reelworks plots ...`: one command per step, each a thin shell over the library."""
from __future__ import annotations

from typing import List, Optional

import typer

import reelworks.plots

app = typer.Typer(help=reelworks.plots.__doc__, no_args_is_help=True)


def _split(values: Optional[List[str]]) -> list[str]:
    """Repeatable options that also take comma lists: `--genre Horror,Drama --genre Crime`."""
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


@app.command("sample-data")
def sample_data(output: str = typer.Option(..., help="Where to write the CSV (path or s3:// URI)."),
                rows: int = typer.Option(600, help="Number of movies."),
                seed: int = typer.Option(0, help="Random seed.")) -> None:
    """Write a small synthetic movies CSV (TMDB columns) for demos and tests."""
    from reelworks.plots.sample import sample_movies_csv

    sample_movies_csv(output, rows, seed)
    typer.echo(f"wrote {rows} movies to {output}")


@app.command()
def prep(input: str = typer.Option(..., help="Movies CSV (IMDb or TMDB export, path or s3:// URI)."),
         output: str = typer.Option(..., help="Output folder URI."),
         columns: Optional[str] = typer.Option(None, help="Column mapping, e.g. 'plot=Synopsis,title=Name'."),
         encoding: Optional[str] = typer.Option(None, help="Text encoding (default: UTF-8, else detected)."),
         min_plot_words: int = typer.Option(8, help="Drop plots shorter than this."),
         min_year: Optional[int] = typer.Option(None, help="Keep movies from this year on."),
         max_year: Optional[int] = typer.Option(None, help="Keep movies up to this year."),
         genre: Optional[List[str]] = typer.Option(None, help="Keep movies of these genres (repeatable)."),
         valid_fraction: float = typer.Option(0.05, help="Share held out for validation (by id)."),
         max_rows: Optional[int] = typer.Option(None, help="Read only the first N rows.")) -> None:
    """Clean a movies CSV into training text, a validation split, real titles and an EDA report."""
    from reelworks.plots.prep import prep as run

    report = run(input, output, columns=columns, encoding=encoding, min_plot_words=min_plot_words,
                 min_year=min_year, max_year=max_year, genres=_split(genre), valid_fraction=valid_fraction,
                 max_rows=max_rows)
    typer.echo(f"kept {int(report.metrics['movies_kept'])} of {int(report.metrics['rows_read'])} movies -> {output}")


@app.command()
def train(data: str = typer.Option(..., help="`plots prep` output URI."),
          output: str = typer.Option(..., help="Where the trained model goes (URI)."),
          arch: str = typer.Option("gpt2", help="gpt2 or lstm (the RNN baseline)."),
          preset: str = typer.Option("tiny", help="'tiny': small random-init GPT-2 and a BPE tokenizer trained "
                                                  "on the corpus; 'smollm2': fine-tune SmolLM2-135M-Instruct from "
                                                  "the packaged GGUF (no download); '' to fine-tune --base-model."),
          base_model: str = typer.Option("gpt2", help="Hub id, local folder or s3:// prefix (with --preset '')."),
          tokenizer: str = typer.Option("", help="Use this tokenizer (e.g. the GPT-2 model's, so perplexities compare)."),
          nproc: int = typer.Option(1, help="Data-parallel processes on this machine (torchrun)."),
          launcher: str = typer.Option("local", help="local (torchrun), trainjob (Kubeflow Trainer v2) or pytorchjob (Training Operator 1.9)."),
          workers: int = typer.Option(1, help="TrainJob nodes / PyTorchJob pods."),
          gpus_per_worker: int = typer.Option(0, help="GPUs (= training processes) per TrainJob node / PyTorchJob pod."),
          checkpoint_dir: str = typer.Option("", help="Checkpoint URI (default OUTPUT/checkpoints); resumes from it."),
          max_steps: int = typer.Option(0, help="Optimizer steps (0: from --epochs)."),
          epochs: float = typer.Option(1.0, help="Passes over the training text when --max-steps is 0."),
          block_size: int = typer.Option(128, help="Tokens per packed sequence."),
          batch_size: int = typer.Option(16, help="Sequences per process per micro-step."),
          grad_accum: int = typer.Option(1, help="Micro-steps per optimizer step."),
          learning_rate: float = typer.Option(0.0, help="Peak learning rate (0: 3e-3 from scratch, 1e-4 "
                                                        "fine-tuning a pretrained model)."),
          warmup_steps: int = typer.Option(30, help="Linear warmup steps before the cosine decay."),
          checkpoint_every: int = typer.Option(100, help="Checkpoint every N steps."),
          eval_every: int = typer.Option(0, help="Validation perplexity every N steps (0: at the end)."),
          compile: bool = typer.Option(False, help="torch.compile the model."),
          seed: int = typer.Option(0, help="Random seed.")) -> None:
    """Train GPT-2 (or the LSTM baseline) on plots, data-parallel, resuming from checkpoints."""
    from reelworks.plots.train import train as run

    result = run(data, output, nproc=nproc, launcher=launcher, workers=workers, gpus_per_worker=gpus_per_worker,
                 arch=arch, preset=preset, base_model=base_model, tokenizer=tokenizer, checkpoint_dir=checkpoint_dir,
                 max_steps=max_steps, epochs=epochs, block_size=block_size, batch_size=batch_size,
                 grad_accum=grad_accum, learning_rate=learning_rate, warmup_steps=warmup_steps,
                 checkpoint_every=checkpoint_every, eval_every=eval_every, compile=compile, seed=seed)
    typer.echo(f"validation perplexity {result['val_perplexity']:.2f} (unigram {result['unigram_perplexity']:.2f})"
               f" -> {output}")


@app.command()
def generate(model: str = typer.Option(..., help="`plots train` output URI."),
             output: str = typer.Option(..., help="JSONL file URI."),
             n: int = typer.Option(100, "-n", "--n", help="Number of samples."),
             title: Optional[List[str]] = typer.Option(None, help="Prompt with these titles (repeatable)."),
             genre: Optional[List[str]] = typer.Option(None, help="Prompt with these genres (repeatable)."),
             temperature: float = typer.Option(0.9), top_k: int = typer.Option(50), top_p: float = typer.Option(0.95),
             repetition_penalty: float = typer.Option(1.1), max_new_tokens: int = typer.Option(120),
             batch_size: int = typer.Option(32, help="Samples per batch."),
             seed: int = typer.Option(0, help="Random seed.")) -> None:
    """Sample plots (unconditional, title- or genre-prompted) to JSON Lines."""
    from reelworks.plots.generate import Sampling
    from reelworks.plots.generate import generate as run

    summary = run(model, output, n=n, titles=title, genres=_split(genre), seed=seed, batch_size=batch_size,
                  sampling=Sampling(temperature, top_k, top_p, repetition_penalty, max_new_tokens))
    typer.echo(f"generated {summary['samples']} plots ({summary['finished']} finished) -> {output}")


@app.command()
def curate(samples: str = typer.Option(..., help="`plots generate` JSONL URI."),
           data: str = typer.Option(..., help="`plots prep` output URI (real titles and plots)."),
           output: str = typer.Option(..., help="Output folder URI (plots.json, plots.jsonl, report)."),
           queue: Optional[str] = typer.Option(None, help="Tweet queue URI to append the kept plots to."),
           genre: Optional[List[str]] = typer.Option(None, help="Keep plots matching these word lists: sci-fi, "
                                                                 "fantasy, horror or a file URI (repeatable)."),
           keyword: Optional[List[str]] = typer.Option(None, help="Keep plots with these words (repeatable)."),
           deny: str = typer.Option("deny", help="Deny-word list: 'deny' (shipped), a file URI, or '' for none."),
           ngram: int = typer.Option(8, help="Words in a row shared with a real plot that count as copying."),
           hashtag_budget: int = typer.Option(30, help="Tweet characters kept free for hashtags."),
           max_unknown: float = typer.Option(0.15, help="Largest share of a plot's words unknown to the training "
                                                        "vocabulary and the English word list.")) -> None:
    """Keep complete, tweet-sized, original, non-duplicate plots of real words; queue them for the tweeter."""
    from reelworks.plots.curate import curate as run

    summary = run(samples, data, output, queue_uri=queue, genres=_split(genre), keywords=_split(keyword),
                  deny=deny or None, ngram=ngram, hashtag_budget=hashtag_budget, max_unknown=max_unknown)
    typer.echo(f"kept {summary['kept']} of {summary['samples']} plots; {summary['queued']} queued -> {output}")


@app.command()
def evaluate(gpt2: str = typer.Option(..., help="GPT-2 `plots train` output URI."),
             curated: str = typer.Option(..., help="`plots curate` output URI."),
             samples: str = typer.Option(..., help="`plots generate` JSONL URI."),
             output: str = typer.Option(..., help="Report folder URI."),
             lstm: Optional[str] = typer.Option(None, help="LSTM `plots train` output URI.")) -> None:
    """Evaluation report: perplexities, curation, distinct-1/2, memorisation, samples."""
    from reelworks.plots.evaluate import evaluate as run

    report = run(gpt2, curated, samples, output, lstm_uri=lstm)
    typer.echo(", ".join(f"{k} {v:.4g}" for k, v in report.metrics.items()))
