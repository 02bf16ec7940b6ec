"""Kubeflow components of the posters workflow: each calls one `reelworks.posters` function.

The prepared dataset, the models and the generated posters travel between steps as KFP
artifacts (their `.path` is handed to the library); the label CSV, poster folders and
backbone weights outside the pipeline are plain string URIs.
"""
from kfp.dsl import HTML, Dataset, Input, Markdown, Metrics, Model, Output

from reelworks.kubeflow import component


@component("cpu")
def prep_posters(labels: str, data: Output[Dataset], markdown: Output[Markdown], html: Output[HTML],
                 metrics: Output[Metrics], images: str = "", genres: str = "all", ratio: float = 30.0,
                 min_year: int = 0, max_year: int = 0, limit: int = 0):
    """Labels + posters -> verified, resized posters in TFRecord shards (0 = no year bound / no limit)."""
    from reelworks.posters.prep import prep

    manifest = prep(labels, data.path, images=images or None, genres=genres, ratio=ratio,
                    min_year=min_year or None, max_year=max_year or None, limit=limit or None)
    manifest["report"].to_kfp(markdown=markdown, html_output=html, metrics=metrics)


@component("tf")
def train_classifier(data: Input[Dataset], model: Output[Model], markdown: Output[Markdown], metrics: Output[Metrics],
                     arch: str = "efficientnet_lite", epochs: int = 10, batch_size: int = 32,
                     learning_rate: float = 0.001, dense_units: int = 512, augment: str = "flip", weights: str = "",
                     workers: int = 1, gpus_per_worker: int = 1, fine_tune: bool = False):
    """The multi-label genre classifier (default: ImageNet EfficientNet-Lite features and a trained head);
    with `workers` > 1 a TFJob trains it across pods."""
    from reelworks.posters.train import launch_tfjob, train

    args = dict(arch=arch, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                dense_units=dense_units, augment=augment, weights=weights or None, fine_tune=fine_tune)
    if workers > 1:
        # The TFJob's pods reach the artifacts through their S3 URIs, not this pod's mounts.
        launch_tfjob(data.uri.replace("minio://", "s3://"), model.uri.replace("minio://", "s3://"),
                     workers=workers, gpus_per_worker=gpus_per_worker, **args)
        return
    card, report = train(data.path, model.path, **args)
    model.metadata["version"] = card.version
    report.to_kfp(markdown=markdown, metrics=metrics)


@component("tf")
def evaluate_classifier(data: Input[Dataset], model: Input[Model], evaluation: Output[Dataset],
                        markdown: Output[Markdown], html: Output[HTML], metrics: Output[Metrics],
                        split: str = "test"):
    """Per-genre metrics beside the label-frequency baseline, listing, gallery, Grad-CAM."""
    from reelworks.posters.evaluate import evaluate

    out = evaluate(data.path, model.path, evaluation.path, split=split)
    out["report"].to_kfp(markdown=markdown, html_output=html, metrics=metrics)


@component("tf")
def train_gan(data: Input[Dataset], gan: Output[Model], markdown: Output[Markdown], html: Output[HTML],
              size: int = 32, steps: int = 2000, batch_size: int = 64, sample_every: int = 200,
              checkpoint_every: int = 200):
    """The conditional DCGAN (genres + decade) with sample grids and loss curves."""
    from reelworks.posters.train_gan import train_gan as run

    card = run(data.path, gan.path, size=size, steps=steps, batch_size=batch_size, sample_every=sample_every,
               checkpoint_every=checkpoint_every)
    card["report"].to_kfp(markdown=markdown, html_output=html)


@component("tf")
def generate_posters(gan: Input[Model], classifier: Input[Model], posters: Output[Dataset],
                     markdown: Output[Markdown], html: Output[HTML], metrics: Output[Metrics],
                     genres: str = "Sci-Fi", decade: int = 0, n: int = 16):
    """Posters for comma-separated `genres` and `decade` (0: none), scored by the classifier."""
    from reelworks.posters.generate import generate

    result = generate(gan.path, posters.path, genres=[g.strip() for g in genres.split(",") if g.strip()],
                      decade=decade or None, n=n, classifier=classifier.path)
    result["report"].to_kfp(markdown=markdown, html_output=html, metrics=metrics)


@component("torch")
def posters_from_plots(curated: Input[Dataset], posters: Output[Dataset], markdown: Output[Markdown],
                       html: Output[HTML], metrics: Output[Metrics], queue_uri: str = "", model: str = "tiny",
                       kind: str = "sd", classifier: str = "", limit: int = 0, steps: int = 25, seed: int = 0):
    """A titled 2:3 poster for each queued plot without one, attached to its queue item.

    Without a `queue_uri` the curated plots become this step's own queue (in `posters`)."""
    from reelworks import storage
    from reelworks.posters.from_plots import posters_from_plots as run

    queue = queue_uri
    if not queue:
        queue = storage.join(posters.path, "queue.jsonl")
        storage.write_text(queue, storage.read_text(storage.join(curated.path, "plots.jsonl")))
    result = run(queue, posters.path, model=model, kind=kind, classifier=classifier or None, limit=limit or None,
                 steps=steps, seed=seed, missing_ok=True)
    result["report"].to_kfp(markdown=markdown, html_output=html, metrics=metrics)
