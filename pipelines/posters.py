"""Posters: genre classifier (prep -> train -> evaluate) and conditional GAN (prep -> train-gan -> generate)."""
from kfp import dsl

from reelworks import kubeflow
from reelworks.components import posters as steps


def LOCAL_ARGUMENTS() -> dict:
    """A small run: the shared 2,000 real posters when present, else a synthetic set made here."""
    from reelworks.settings import cache_dir, shared_data_dir

    labels = shared_data_dir() / "posters" / "posters_2000.csv"
    if not labels.is_file():
        from reelworks.posters.synthetic import make_posters

        folder = cache_dir() / "posters" / "synthetic"
        labels = folder / "posters.csv"
        if not labels.is_file():
            make_posters(str(folder), n=240)
    return {"labels": str(labels), "ratio": 20.0, "epochs": 4, "dense_units": 128, "gan_steps": 40,
            "gan_batch_size": 32, "generate_genres": "Sci-Fi", "generate_decade": 1980, "n": 8}


def INPUT_CHECKS() -> dict:
    """Checked before the first step (0 and "" mean no bound, no limit or the default)."""
    from reelworks import checks
    from reelworks.imageclf.spec import ARCHITECTURES
    from reelworks.posters.images import size_for_ratio

    return {"labels": checks.existing_file, "ratio": checks.accepted_by(size_for_ratio),
            "min_year": checks.at_least(0), "max_year": checks.at_least(0), "limit": checks.at_least(0),
            "arch": checks.one_of(ARCHITECTURES), "epochs": checks.at_least(1), "batch_size": checks.at_least(1),
            "dense_units": checks.at_least(1), "train_workers": checks.at_least(1), "gan_steps": checks.at_least(1),
            "gan_batch_size": checks.at_least(2), "n": checks.at_least(1)}


@dsl.pipeline(name="posters", description=__doc__)
def pipeline(labels: str, images: str = "", genres: str = "all", ratio: float = 30.0, min_year: int = 0,
             max_year: int = 0, limit: int = 0, arch: str = "efficientnet_lite", epochs: int = 10, batch_size: int = 32,
             dense_units: int = 512, weights: str = "", train_workers: int = 1, gan_size: int = 32,
             gan_steps: int = 2000, gan_batch_size: int = 64, generate_genres: str = "Sci-Fi",
             generate_decade: int = 1980, n: int = 16):
    prep = kubeflow.with_s3(steps.prep_posters(labels=labels, images=images, genres=genres, ratio=ratio,
                                               min_year=min_year, max_year=max_year, limit=limit))
    train = steps.train_classifier(data=prep.outputs["data"], arch=arch, epochs=epochs, batch_size=batch_size,
                                   dense_units=dense_units, weights=weights, workers=train_workers)
    kubeflow.on_gpu(kubeflow.with_s3(train))
    evaluate = kubeflow.with_s3(steps.evaluate_classifier(data=prep.outputs["data"], model=train.outputs["model"]))
    evaluate.set_display_name("evaluate-classifier")
    gan = steps.train_gan(data=prep.outputs["data"], size=gan_size, steps=gan_steps, batch_size=gan_batch_size)
    kubeflow.on_gpu(kubeflow.with_s3(gan))
    generate = steps.generate_posters(gan=gan.outputs["gan"], classifier=train.outputs["model"],
                                      genres=generate_genres, decade=generate_decade, n=n)
    kubeflow.with_s3(generate)
