"""`posters evaluate`: how well the genre classifier does, beside the label-frequency baseline.

Per-genre precision, recall, F1 and AP; micro and macro F1; mAP; subset accuracy; and the
original's "overall accuracy" (Keras' categorical accuracy: the top-scored genre is the
first true genre in column order) for comparison. Decisions use the per-genre thresholds
tuned on validation (stored in the model card). The baseline scores every poster with the
training prevalence of each genre, its thresholds tuned on the same validation split.
Outputs: `evaluation.json`, `listing.txt` (the original's format), `report/` with a gallery
of posters and their predictions, ROC/PR curves and a Grad-CAM map.
"""
from __future__ import annotations

import json
import logging

import numpy as np

from reelworks import storage
from reelworks.errors import ReelworksError
from reelworks.metrics import job_metrics
from reelworks.posters.prep import load_manifest, local_split_files
from reelworks.reports import Report

log = logging.getLogger(__name__)


def original_accuracy(scores: np.ndarray, truth: np.ndarray) -> float:
    """The original's "overall accuracy": argmax(scores) == argmax(truth), as Keras computed it."""
    return float((scores.argmax(axis=1) == truth.argmax(axis=1)).mean()) if len(scores) else 0.0


def top1_hit_rate(scores: np.ndarray, truth: np.ndarray) -> float:
    """The top-scored genre is one of the poster's genres."""
    return float(truth[np.arange(len(scores)), scores.argmax(axis=1)].mean()) if len(scores) else 0.0


def listing_line(title: str, scores: np.ndarray, truth: np.ndarray, classes, top: int = 3) -> str:
    """`The Matrix (1999)   ['Action: 91%', 'Drama[!]: 25%', ...]`; [!] = not a true genre."""
    order = np.argsort(-scores)[:top]
    parts = [f"{classes[k]}{'' if truth[k] else '[!]'}: {scores[k]:.0%}" for k in order]
    return f"{title[:30]:<32} {parts}"


def original_listing_line(title: str, scores: np.ndarray, truth: np.ndarray, classes, top: int = 3) -> str:
    """The original project's printout: `Title (Year): Drama: 0.61, Comedy: 0.32, Action: 0.12`,
    then the true genres."""
    order = np.argsort(-scores)[:top]
    true = ", ".join(classes[k] for k in np.flatnonzero(truth)) or "none"
    return f"{title}: " + ", ".join(f"{classes[k]}: {scores[k]:.2f}" for k in order) + f"  (true: {true})"


def genre_confusions(scores: np.ndarray, truth: np.ndarray, thresholds) -> tuple[np.ndarray, np.ndarray]:
    """Per genre [[TN, FP], [FN, TP]] (shape genres x 2 x 2), and genre by genre: of the posters
    of true genre i, how many get genre j predicted (rows: truth, columns: prediction)."""
    predicted = (scores >= np.asarray(thresholds)[None, :]).astype(int)
    truth = (np.asarray(truth) > 0).astype(int)
    per_genre = np.array([[[((truth[:, k] == a) & (predicted[:, k] == b)).sum() for b in (0, 1)] for a in (0, 1)]
                          for k in range(truth.shape[1])])
    return per_genre, truth.T @ predicted


def evaluate(data: str, model: str, output: str, *, split: str = "test", gallery: int = 24,
             cam_index: int = 0) -> dict:
    """Evaluate `model` on `split` of `data`; writes the results below `output`, returns them."""
    import pandas as pd

    from reelworks.imageclf import data as data_lib
    from reelworks.imageclf import evaluation as ev
    from reelworks.imageclf import training

    manifest = load_manifest(data)
    if split not in manifest["splits"]:
        raise ReelworksError(f"unknown split {split!r}; expected train, validation or test")
    if manifest["splits"][split]["count"] == 0:
        raise ReelworksError(f"the {split} split of {data} is empty: nothing to evaluate")
    clf, card = training.load(model)
    task, image = card.task_spec, card.image_spec
    if list(task.classes) != list(manifest["classes"]):
        raise ReelworksError(f"the model's genres ({', '.join(task.classes)}) differ from the dataset's "
                             f"({', '.join(manifest['classes'])})")
    with job_metrics("posters_evaluate") as metrics:
        ids, pixels, truth = data_lib.read_records(local_split_files(data, manifest, split), image, task)
        scores = ev.predict_arrays(clf, pixels)
        metrics.items.inc(len(ids))
        thresholds = card.thresholds
        results = ev.classification_metrics(scores, truth, task, thresholds)
        at_half = ev.classification_metrics(scores, truth, task, [0.5] * task.num_outputs)

        # Label-frequency baseline, thresholds tuned on validation exactly like the model's.
        n_train = manifest["splits"]["train"]["count"]
        prevalence = np.asarray(manifest["splits"]["train"]["positives"], np.float32) / max(1, n_train)
        val_split = "validation" if manifest["splits"]["validation"]["count"] else "train"
        val_truth = data_lib.read_records(local_split_files(data, manifest, val_split), image, task)[2]
        base_thresholds = ev.tune_thresholds(np.tile(prevalence, (len(val_truth), 1)), val_truth, task,
                                             mode=card.threshold_mode)
        baseline = ev.classification_metrics(np.tile(prevalence, (len(ids), 1)), truth, task, base_thresholds)

        table = pd.read_csv(storage.join(data, "posters.csv"), dtype={"imdbId": str}, keep_default_na=False)
        titles = {r["imdbId"]: (f"{r['title']} ({r['year']})" if r["year"] else r["title"])
                  for r in table.to_dict("records")}
        names = [titles.get(i, f"imdb {i}") for i in ids]
        extra = {"original_accuracy": original_accuracy(scores, truth), "top1_hit_rate": top1_hit_rate(scores, truth)}
        base_extra = {"original_accuracy": original_accuracy(np.tile(prevalence, (len(ids), 1)), truth),
                      "top1_hit_rate": top1_hit_rate(np.tile(prevalence, (len(ids), 1)), truth)}
        summary = {"model": {**ev.summary_metrics(results), **extra},
                   "model_at_0.5": {**ev.summary_metrics(at_half), **extra},
                   "frequency_baseline": {**ev.summary_metrics(baseline), **base_extra}}
        out = {"split": split, "model_version": card.version, "count": len(ids), "classes": list(task.classes),
               "thresholds": thresholds, "threshold_mode": card.threshold_mode, "summary": summary,
               "per_class": results["per_class"],
               "baseline_per_class": baseline["per_class"],
               "beats_baseline": {k: summary["model"][k] > summary["frequency_baseline"][k]
                                  for k in ("mAP", "micro_f1")}}
        listing = "\n".join(listing_line(n, s, t, task.classes) for n, s, t in zip(names, scores, truth))
        storage.write_text(storage.join(output, "listing_original.txt"),
                           "\n".join(original_listing_line(n, s, t, task.classes)
                                     for n, s, t in zip(names, scores, truth)) + "\n")
        report = _report(out, clf, task, scores, truth, pixels, names, gallery, cam_index)
        storage.write_text(storage.join(output, "listing.txt"), listing + "\n")
        report.save(storage.join(output, "report"))
        storage.write_text(storage.join(output, "evaluation.json"), json.dumps(out, indent=2))
        for key in ("mAP", "micro_f1"):
            metrics.gauge(f"reelworks_posters_test_{key.lower()}", f"Test {key}").set(summary["model"][key])
    log.info("%s: mAP %.3f (baseline %.3f), micro-F1 %.3f (baseline %.3f)", split, summary["model"]["mAP"],
             summary["frequency_baseline"]["mAP"], summary["model"]["micro_f1"],
             summary["frequency_baseline"]["micro_f1"])
    out["report"] = report
    return out


def _report(out, clf, task, scores, truth, pixels, names, gallery, cam_index) -> Report:
    from reelworks.imageclf import evaluation as ev

    summary = out["summary"]
    report = Report(f"Posters: evaluation on the {out['split']} split ({out['count']} posters)")
    verdict = "; ".join(f"{k}: {'beats' if ok else 'does NOT beat'} the label-frequency baseline"
                        for k, ok in out["beats_baseline"].items())
    report.text(f"Model {out['model_version']}. {verdict}. Decision thresholds tuned on validation "
                f"({out['threshold_mode']}); the baseline's too.")
    keys = ["mAP", "micro_f1", "macro_f1", "subset_accuracy", "label_accuracy", "original_accuracy", "top1_hit_rate"]
    report.table(["metric", "model", "label-frequency baseline", "model @ 0.5"],
                 [[k, round(summary["model"][k], 4), round(summary["frequency_baseline"][k], 4),
                   round(summary["model_at_0.5"][k], 4)] for k in keys])
    report.heading("Per genre")
    report.table(["genre", "support", "precision", "recall", "F1", "AP", "baseline AP", "threshold"],
                 [[c["class"], c["support"], round(c["precision"], 3), round(c["recall"], 3), round(c["f1"], 3),
                   round(c["ap"], 3), round(b["ap"], 3), round(c["threshold"], 3)]
                  for c, b in zip(out["per_class"], out["baseline_per_class"])])
    per_genre, cross = genre_confusions(scores, truth, out["thresholds"])
    columns = 5
    rows = -(-len(task.classes) // columns)
    with report.figure("genre_confusion", "Per-genre confusion on this split (rows: truth no/yes, columns: "
                       "predicted no/yes; colour: share of the row)", size=(2.3 * columns, 2.1 * rows),
                       nrows=rows, ncols=columns, squeeze=False) as axes:
        for k, ax in enumerate(axes.ravel()):
            if k >= len(task.classes):
                ax.axis("off")
                continue
            m = per_genre[k]
            ax.imshow(m / np.maximum(m.sum(axis=1, keepdims=True), 1), cmap="Blues", vmin=0, vmax=1)
            for (i, j), v in np.ndenumerate(m):
                ax.text(j, i, str(v), ha="center", va="center", fontsize=8)
            ax.set_xticks([0, 1], ["no", "yes"], fontsize=7)
            ax.set_yticks([0, 1], ["no", "yes"], fontsize=7)
            ax.set_title(f"{task.classes[k]} (AP {out['per_class'][k]['ap']:.2f})", fontsize=8)
    report.image("genre_by_genre", ev.confusion_matrix_png(cross.tolist(), list(task.classes),
                                                           "posters of true genre (row) given genre (column)"),
                 "Genre by genre: how many posters of each true genre get each genre predicted (the diagonal: "
                 "hits; off the diagonal: what a genre is taken for)")
    report.heading("Listing (the original's format, first posters of the split)")
    report.text("\n".join(["```"] + [original_listing_line(n, s_, t, task.classes)
                                      for n, s_, t in list(zip(names, scores, truth))[:20]] + ["```"]))
    ev.add_curves(report, scores, truth, task)
    shown = min(gallery, len(names))
    captions, colours = [], []
    for i in range(shown):
        order = np.argsort(-scores[i])[:3]
        captions.append(f"{names[i][:24]}\n" + "\n".join(f"{task.classes[k]}{'' if truth[i, k] else '!'} "
                                                           f"{scores[i, k]:.0%}" for k in order))
        colours.append("darkgreen" if truth[i, order[0]] else "firebrick")
    report.image("gallery", ev.gallery_png(list(pixels[:shown]), captions, colors=colours),
                 "Test posters with their top-3 genres (! = not a true genre; green = top genre is right)")
    if len(names):
        i = min(cam_index, len(names) - 1)
        top = int(np.argmax(scores[i]))
        report.image("gradcam", ev.grad_cam_png(clf, pixels[i], top, f"{names[i][:28]}: {task.classes[top]}"),
                     "Grad-CAM: where the model looked for its top genre")
    for name, value in summary["model"].items():
        report.metric(name, value)
    for key in ("mAP", "micro_f1"):
        report.metric(f"baseline_{key}", summary["frequency_baseline"][key])
    return report
