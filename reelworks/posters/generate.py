"""`posters generate`: posters from the conditional GAN for given genres and decade, and
whether the genre classifier agrees with the requested genre.

Agreement: the classifier (its own thresholds, tuned on validation) calls each requested
genre on a share of the generated posters; that share is compared with the genre's
prevalence among real training posters (what a classifier blind to the image would hit),
and with the same figures on real posters of that genre (the GAN's dataset's test split, which
neither the GAN nor the classifier trained on), brought to the GAN's size and back exactly as the
generated ones are: what a perfect generator would score.
"""
from __future__ import annotations

import json
import logging

import numpy as np

from reelworks import storage
from reelworks.errors import NotFoundError, ReelworksError
from reelworks.media import png_bytes
from reelworks.metrics import job_metrics
from reelworks.posters.train_gan import CARD
from reelworks.reports import Report

log = logging.getLogger(__name__)


def load_gan(uri: str):
    import keras

    card_uri = storage.join(uri, CARD)
    if not storage.exists(card_uri):
        raise NotFoundError(f"no finished GAN at {uri} (no {CARD}): run `posters train-gan` first")
    card = json.loads(storage.read_text(card_uri))
    with storage.local_file(storage.join(uri, "generator.keras")) as path:
        generator = keras.saving.load_model(path, compile=False, safe_mode=True)
    return generator, card


def generate(gan_uri: str, output: str, *, genres: list[str], decade: int | None = None, n: int = 16,
             classifier: str | None = None, seed: int = 0) -> dict:
    """Write `n` posters for `genres` (+ `decade`) below `output`; returns the agreement figures."""
    from reelworks.imageclf import evaluation as ev
    from reelworks.posters import gan

    generator, card = load_gan(gan_uri)
    classes = card["classes"]
    unknown = [g for g in genres if g not in classes]
    if unknown or not genres:
        raise ReelworksError(f"unknown genre(s) {', '.join(unknown) or '(none given)'}; the GAN knows: {', '.join(classes)}")
    if n < 1:
        raise ReelworksError("n must be >= 1")
    if decade is not None and int(decade) not in card.get("decades_seen", []):
        log.warning("the GAN saw no poster from the %ss; the decade condition is untrained", decade)
    rows = np.zeros((n, len(classes)), np.float32)
    for g in genres:
        rows[:, classes.index(g)] = 1.0
    cond = gan.conditions(rows, [decade] * n)
    z = np.random.default_rng(seed).normal(size=(n, card["z_dim"])).astype(np.float32)
    with job_metrics("posters_generate") as metrics:
        images = gan.to_uint8(generator([z, cond], training=False))
        metrics.items.inc(n)
        label = "+".join(genres) + (f", {decade}s" if decade else "")
        result = {"genres": genres, "decade": decade, "n": n, "seed": seed, "gan": gan_uri}
        scores_caption = [label] * n
        if classifier:
            from reelworks.imageclf import training

            clf, clf_card = training.load(classifier)
            scores = ev.predict_arrays(clf, _to_classifier(images, clf_card.image_spec))
            names = list(clf_card.task_spec.output_names)
            real = _real_scores(card, clf, clf_card)
            agreement = {}
            for g in genres:
                if g not in names:
                    continue
                k = names.index(g)
                prevalence = card["genre_prevalence"][classes.index(g)] if g in classes else None
                agreement[g] = {"agree_rate": float((scores[:, k] >= clf_card.thresholds[k]).mean()),
                                "mean_probability": float(scores[:, k].mean()), "real_prevalence": prevalence,
                                "top1_rate": float((scores.argmax(axis=1) == k).mean())}
                if real is not None:
                    real_scores, real_labels, real_names = real
                    if g in real_names:
                        members = real_scores[real_labels[:, real_names.index(g)] > 0]
                        agreement[g].update({
                            "real_count": int(len(members)),
                            "real_agree_rate": float((members[:, k] >= clf_card.thresholds[k]).mean()) if len(members) else None,
                            "real_mean_probability": float(members[:, k].mean()) if len(members) else None,
                            "real_top1_rate": float((members.argmax(axis=1) == k).mean()) if len(members) else None})
            result["agreement"] = agreement
            result["classifier"] = classifier
            scores_caption = [" ".join(f"{g} {scores[i, names.index(g)]:.0%}" for g in genres if g in names)
                              for i in range(n)]
            for g, figures in agreement.items():
                metrics.gauge("reelworks_posters_generate_agree_rate", "Share of generated posters the classifier "
                              "calls the requested genre", ["genre"]).labels(genre=g).set(figures["agree_rate"])
        from reelworks.imageclf.evaluation import gallery_png

        for i, pixels in enumerate(images):
            storage.write_bytes(storage.join(output, "posters", f"{i:03d}.png"), png_bytes(pixels))
        grid = gallery_png(list(images), scores_caption, columns=min(8, n), cell_inches=1.3,
                           title=f"Generated: {label}")
        storage.write_bytes(storage.join(output, "grid.png"), grid)
        report = Report(f"Posters: generated {label}")
        report.image("grid", grid, "Generated posters" + (" (captions: classifier probability of the requested genre)"
                                                           if classifier else ""))
        if result.get("agreement"):
            pct = lambda v: "?" if v is None else f"{v:.0%}"  # noqa: E731
            report.text("Classifier agreement: generated posters beside real posters of the same genre (the test "
                        "split, resized to the GAN's size and back like the generated ones). Generated posters "
                        "that agree far less often than real ones do not look like their genre to the classifier.")
            report.table(["genre", "classifier agrees (generated)", "agrees (real, same genre)",
                          "mean probability (generated / real)", "top-1 rate (generated / real)", "real posters",
                          "prevalence in real posters"],
                         [[g, pct(a["agree_rate"]), pct(a.get("real_agree_rate")),
                           f"{a['mean_probability']:.3f} / " + ("?" if a.get("real_mean_probability") is None
                                                                else f"{a['real_mean_probability']:.3f}"),
                           f"{pct(a['top1_rate'])} / {pct(a.get('real_top1_rate'))}", a.get("real_count", "?"),
                           pct(a["real_prevalence"])]
                          for g, a in result["agreement"].items()])
            for g, a in result["agreement"].items():
                report.metric(f"agree_rate_{g}", a["agree_rate"])
        report.save(storage.join(output, "report"))
        storage.write_text(storage.join(output, "generated.json"), json.dumps(result, indent=2))
    result["report"] = report
    return result


def _to_classifier(images: np.ndarray, spec) -> np.ndarray:
    import tensorflow as tf

    return tf.image.resize(images.astype(np.float32), (spec.height, spec.width), antialias=True).numpy().clip(0, 255)


def _real_scores(card: dict, clf, clf_card):
    """(scores, labels, genres) of the GAN dataset's real test posters, squared to the GAN's size
    and resized to the classifier's like generated ones; None when the dataset is not readable."""
    import tensorflow as tf

    from reelworks.imageclf import data as data_lib
    from reelworks.imageclf import evaluation as ev
    from reelworks.imageclf.spec import ImageSpec, Task
    from reelworks.posters.prep import load_manifest, local_split_files

    try:
        manifest = load_manifest(card["dataset"])
        split = "test" if manifest["splits"]["test"]["count"] else "validation"
        files = local_split_files(card["dataset"], manifest, split)
    except Exception as exc:  # moved or deleted dataset: agreement without the real column, said in the log
        log.warning("no real posters to compare with (%s): %s", card.get("dataset"), str(exc).splitlines()[0][:200])
        return None
    task = Task("multilabel", tuple(manifest["classes"]))
    _, pixels, labels = data_lib.read_records(files, ImageSpec.from_dict(manifest["image"]), task)
    if not len(pixels):
        return None
    size = int(card["size"])
    square = tf.image.resize(pixels.astype(np.float32), (size, size), antialias=True).numpy().round().clip(0, 255)
    scores = ev.predict_arrays(clf, _to_classifier(square.astype(np.uint8), clf_card.image_spec))
    return scores, labels, list(task.classes)  # scores: the classifier's columns; labels: the dataset's
