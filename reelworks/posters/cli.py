"""`reelworks posters ...`: one command per step, each a thin shell over the library."""
from __future__ import annotations

import json
from typing import List, Optional

import typer

import reelworks.posters

app = typer.Typer(help=reelworks.posters.__doc__, no_args_is_help=True)


@app.command()
def prep(labels: str = typer.Option(..., help="Label CSV: MovieGenre.csv (URLs) or the one-hot posters_2000.csv shape."),
         output: str = typer.Option(..., help="Where the prepared dataset goes (folder or s3:// prefix)."),
         images: Optional[str] = typer.Option(None, help="Poster folder (default: images/ next to the CSV; "
                                                         "for URLs: where fetched posters are kept)."),
         genres: str = typer.Option("all", help="3, 7 or 14 (the original's groups), all, or a comma list."),
         ratio: float = typer.Option(30, help="Poster size in percent of 182x268 (30 -> 55x80)."),
         min_year: Optional[int] = typer.Option(None, help="Keep movies from this year (parsed from 'Title (Year)')."),
         max_year: Optional[int] = typer.Option(None, help="Keep movies up to this year."),
         shards: int = typer.Option(4, help="TFRecord shards per split."),
         workers: int = typer.Option(8, help="Concurrent downloads."),
         timeout: float = typer.Option(10, help="Seconds per HTTP request."),
         retries: int = typer.Option(2, help="Retries for timeouts and 5xx."),
         limit: Optional[int] = typer.Option(None, help="Use only the first N movies (by imdbId).")) -> None:
    """Read labels, fetch/verify/resize posters, split by imdbId, write TFRecord shards."""
    from reelworks.posters.prep import prep as run

    manifest = run(labels, output, images=images, genres=genres, ratio=ratio, min_year=min_year, max_year=max_year,
                   shards=shards, workers=workers, timeout=timeout, retries=retries, limit=limit)
    counts = ", ".join(f"{s} {v['count']}" for s, v in manifest["splits"].items())
    rejected = sum(manifest["rejected"].values())
    typer.echo(f"{manifest['kept']} posters kept ({counts}), {rejected} rejected, "
               f"{len(manifest['classes'])} genres -> {output}")


@app.command()
def train(data: str = typer.Option(..., help="A `posters prep` output."),
          output: str = typer.Option(..., help="Model folder (model.keras + model_card.json)."),
          arch: str = typer.Option("efficientnet_lite", help="efficientnet_lite (ImageNet features, the default), "
                                   "or from scratch: posters_cnn (the original), small_cnn, mobilenet_v3_small, "
                                   "efficientnet_b0."),
          epochs: int = typer.Option(10), batch_size: int = typer.Option(32, help="Per GPU."),
          learning_rate: float = typer.Option(1e-3), dense_units: int = typer.Option(512),
          dropout: float = typer.Option(0.25), augment: str = typer.Option("flip", help="none, flip or light."),
          weights: Optional[str] = typer.Option(None, help="Backbone weights. efficientnet_lite: efficientnet-lite0 "
                                                 "(packaged, the default) to -lite4, a .safetensors/.pth file, a folder, "
                                                 "s3:// prefix or Hub id (timm layout); the others: .keras/.h5."),
          fine_tune: bool = typer.Option(False, help="efficientnet_lite: train the backbone too (default: frozen "
                                         "features, computed once; only the head trains)."),
          balance: bool = typer.Option(True, help="Weight positives of rare genres (pos_weight)."),
          patience: int = typer.Option(0, help="Early stopping patience in epochs (0: off)."),
          seed: int = typer.Option(0),
          thresholds: str = typer.Option("calibrated", help="calibrated (genres Platt-scaled on validation, one "
                                         "threshold for the best micro-F1), global (one raw threshold) or per_class."),
          resume: bool = typer.Option(True, help="Resume from the output's checkpoint if one is there."),
          workers: int = typer.Option(1, help="> 1: run as a Kubeflow TFJob of this many pods (s3:// URIs)."),
          gpus_per_worker: int = typer.Option(0, help="GPUs per TFJob pod.")) -> None:
    """Train the multi-label genre classifier (Keras 3 on TensorFlow)."""
    from reelworks.posters.train import launch_tfjob
    from reelworks.posters.train import train as run

    args = dict(arch=arch, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                dense_units=dense_units, dropout=dropout, augment=augment, weights=weights, balance=balance,
                patience=patience, seed=seed, resume=resume, thresholds=thresholds, fine_tune=fine_tune)
    if workers > 1:
        launch_tfjob(data, output, workers=workers, gpus_per_worker=gpus_per_worker, **args)
        typer.echo(f"TFJob of {workers} workers finished -> {output}")
        return
    card, _ = run(data, output, **args)
    typer.echo(f"model {card.version}: validation mAP {card.validation.get('mAP', 0):.3f}, "
               f"micro-F1 {card.validation.get('micro_f1', 0):.3f} -> {output}")


@app.command()
def evaluate(data: str = typer.Option(..., help="A `posters prep` output."),
             model: str = typer.Option(..., help="A `posters train` output."),
             output: str = typer.Option(..., help="Where the evaluation goes."),
             split: str = typer.Option("test"), gallery: int = typer.Option(24, help="Posters in the gallery.")) -> None:
    """Per-genre and overall metrics beside the label-frequency baseline, listing and gallery."""
    from reelworks.posters.evaluate import evaluate as run

    out = run(data, model, output, split=split, gallery=gallery)
    model_, base = out["summary"]["model"], out["summary"]["frequency_baseline"]
    typer.echo(f"{split}: mAP {model_['mAP']:.3f} (baseline {base['mAP']:.3f}), micro-F1 {model_['micro_f1']:.3f} "
               f"(baseline {base['micro_f1']:.3f}) -> {output}")


@app.command()
def predict(model: str = typer.Option(..., help="A `posters train` output."),
            image: List[str] = typer.Option(..., "--image", help="Poster file, folder, s3:// or http(s) URL (repeatable)."),
            output: Optional[str] = typer.Option(None, help="Write JSON Lines here instead of printing a listing."),
            batch_size: int = typer.Option(64), top: int = typer.Option(3)) -> None:
    """Genres with probabilities for any poster."""
    from reelworks.posters.predict import predict as run

    results = run(model, image, output=output, batch_size=batch_size, top=top)
    if output:
        typer.echo(f"{sum('genres' in r for r in results)} poster(s) -> {output}")
        return
    for r in results:
        typer.echo(f"{r['image']}  {r['top']}" if "genres" in r else f"{r['image']}  error: {r['error']}")


@app.command("train-gan")
def train_gan(data: str = typer.Option(..., help="A `posters prep` output."),
              output: str = typer.Option(..., help="GAN folder."),
              size: int = typer.Option(32, help="32 or 64 pixels square."),
              steps: int = typer.Option(2000), batch_size: int = typer.Option(64),
              learning_rate: float = typer.Option(2e-4), sample_every: int = typer.Option(200),
              checkpoint_every: int = typer.Option(200, help="Steps between checkpoints (OUTPUT/checkpoints); "
                                                   "a run started again resumes from the newest."),
              seed: int = typer.Option(0)) -> None:
    """Train the conditional DCGAN (genres + decade), resuming from its checkpoints."""
    from reelworks.posters.train_gan import train_gan as run

    card = run(data, output, size=size, steps=steps, batch_size=batch_size, learning_rate=learning_rate,
               sample_every=sample_every, checkpoint_every=checkpoint_every, seed=seed)
    typer.echo(f"GAN trained {card['steps']} steps (d_loss {card['final_d_loss']:.3f}, "
               f"g_loss {card['final_g_loss']:.3f}) -> {output}")


@app.command()
def generate(gan: str = typer.Option(..., help="A `posters train-gan` output."),
             output: str = typer.Option(..., help="Where the posters go."),
             genre: List[str] = typer.Option(..., help="Genre to ask for (repeatable)."),
             decade: Optional[int] = typer.Option(None, help="e.g. 1980."),
             n: int = typer.Option(16, "-n", "--n", help="How many posters."),
             classifier: Optional[str] = typer.Option(None, help="A `posters train` output, to score agreement."),
             seed: int = typer.Option(0)) -> None:
    """Generate posters for genres and a decade; score them with the genre classifier."""
    from reelworks.posters.generate import generate as run

    result = run(gan, output, genres=genre, decade=decade, n=n, classifier=classifier, seed=seed)
    result.pop("report", None)
    typer.echo(json.dumps(result.get("agreement", {}), indent=1) if classifier else f"{n} posters -> {output}")


@app.command()
def synthetic(output: str = typer.Option(..., help="Folder for images/ and posters.csv."),
              n: int = typer.Option(300, "-n", "--n"), seed: int = typer.Option(0)) -> None:
    """Make a small synthetic poster set (a shape and colour per genre) for demos and tests."""
    from reelworks.posters.synthetic import make_posters

    typer.echo(make_posters(output, n=n, seed=seed))


@app.command("from-plots")
def from_plots(queue: str = typer.Option(..., help="The tweet queue (JSON Lines) whose plots get posters."),
               output: str = typer.Option(..., help="Folder for the report, prompts and raw renders."),
               model: str = typer.Option("tiny", help="tiny, a Hub id, a diffusers folder or an s3:// prefix."),
               kind: str = typer.Option("sd", help="sd or sdxl."),
               classifier: Optional[str] = typer.Option(None, help="A `posters train` output: its genres go in "
                                                                   "the report."),
               limit: Optional[int] = typer.Option(None, help="At most this many posters this run."),
               steps: int = typer.Option(25, help="Denoising steps."),
               guidance: float = typer.Option(7.5, help="Classifier-free guidance scale."),
               batch_size: str = typer.Option("auto", help="Images per batch, or auto (halves on GPU OOM)."),
               seed: int = typer.Option(0, help="Mixed with each plot's id: every plot has its own seed.")) -> None:
    """A poster for every queued plot without one: rendered, titled, saved beside the queue."""
    from reelworks.posters.from_plots import beside, posters_from_plots

    result = posters_from_plots(queue, output, model=model, kind=kind, classifier=classifier, limit=limit,
                                steps=steps, guidance=guidance, seed=seed, batch_size=batch_size)
    fallbacks = f", {result['template_fallbacks']} from the template: the LLM failed" \
        if result.get("template_fallbacks") else ""
    typer.echo(f"{result['rendered']} poster(s) ({result['prompt_source']} prompts{fallbacks}), "
               f"{result['already_with_image']} already had one, {result['dropped']['no_plot']} without a plot "
               f"-> {beside(queue, 'posters')}; report in {output}")
