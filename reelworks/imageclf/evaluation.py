"""Evaluation shared by every classifier: scores, thresholds, metrics, charts, galleries,
and Grad-CAM activation maps. Scores are probabilities shaped like the model's output:
[n, k] (multilabel, multiclass) or [n, 1] (binary)."""
from __future__ import annotations

import io
import os
from typing import Sequence

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np

from reelworks.imageclf.spec import Task


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    plt = _plt()
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


# --------------------------------------------------------------------------- predictions


def predict(model, dataset) -> tuple[np.ndarray, np.ndarray]:
    """Scores and labels for a dataset of (pixels, labels) batches, in dataset order."""
    import tensorflow as tf

    # One traced graph for every batch (the last, shorter one traces once more): called eagerly,
    # each op is dispatched from Python, which made the frozen EfficientNet-Lite0 features of
    # the 4,000 posters about twice as slow on CPU (512 posters: 11.9 s eager, 6.9 s traced).
    # XLA (`jit_compile`) is no help there: 128 s for the same 512.
    score = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    scores, labels = [], []
    for x, y in dataset:
        scores.append(np.asarray(score(x), np.float32))
        labels.append(np.asarray(y))
    if not scores:
        return np.zeros((0, model.output_shape[-1]), np.float32), np.zeros((0,))
    return np.concatenate(scores), np.concatenate(labels)


def predict_arrays(model, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Scores for pixels [n, H, W, C] in 0..255."""
    if len(images) == 0:
        return np.zeros((0, model.output_shape[-1]), np.float32)
    return np.asarray(model.predict(np.asarray(images, np.float32), batch_size=batch_size, verbose=0), np.float32)


def _as_matrix(labels: np.ndarray, task: Task) -> np.ndarray:
    """Labels as a 0/1 matrix [n, outputs] (one-hot for multiclass)."""
    labels = np.asarray(labels)
    if task.kind == "multiclass":
        return np.eye(len(task.classes), dtype=np.float32)[labels.astype(int).reshape(-1)]
    return labels.reshape(len(labels), -1).astype(np.float32)


# --------------------------------------------------------------------------- thresholds


def threshold_at_fpr(scores: np.ndarray, labels: np.ndarray, max_fpr: float) -> float:
    """The lowest threshold (highest recall) whose false-positive rate is <= `max_fpr`."""
    from sklearn.metrics import roc_curve

    scores, labels = np.ravel(scores), np.ravel(labels).astype(int)
    if labels.min(initial=1) == labels.max(initial=0):
        return 0.5
    fpr, _, thresholds = roc_curve(labels, scores)
    ok = np.where(fpr <= max_fpr)[0]
    return float(np.clip(thresholds[ok[-1]], 0.0, 1.0)) if len(ok) else 1.0


THRESHOLD_MODES = ("per_class", "global", "calibrated")


def tune_thresholds(scores: np.ndarray, labels: np.ndarray, task: Task, *, max_fpr: float | None = None,
                    mode: str = "per_class") -> list[float]:
    """Per-output decision thresholds chosen on validation data.

    Sigmoid outputs, `mode="per_class"`: the threshold with the best F1 per output (or, for a
    binary task with `max_fpr`, the best recall at that false-positive rate); outputs with no
    positive (or no negative) example keep 0.5. `mode="global"`: one threshold for every
    output, the best micro-F1 (one parameter instead of k: steadier on small validation
    sets). `mode="calibrated"`: each output's scores are put on one scale by a logistic fit on
    validation (Platt scaling), then one threshold on that scale gives the best micro-F1; it is
    returned as the equivalent threshold per output (class-weighted training inflates rare
    outputs' scores, so one raw threshold for all of them is not one decision rule).
    Multiclass uses argmax: thresholds are all 0.
    """
    from sklearn.metrics import precision_recall_curve

    if mode not in THRESHOLD_MODES:
        raise ValueError(f"mode must be one of {', '.join(THRESHOLD_MODES)}, not {mode!r}")
    if task.kind == "multiclass":
        return [0.0] * len(task.classes)
    truth = _as_matrix(labels, task)
    scores = np.asarray(scores).reshape(len(scores), -1)
    if mode == "calibrated" and not (task.kind == "binary" and max_fpr is not None):
        return _calibrated_thresholds(scores, truth)
    if mode == "global" and not (task.kind == "binary" and max_fpr is not None):
        if truth.sum() == 0:
            return [0.5] * task.num_outputs
        precision, recall, thresholds = precision_recall_curve(truth.ravel(), scores.ravel())
        f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
        return [float(thresholds[int(np.argmax(f1[:-1]))])] * task.num_outputs
    out = []
    for k in range(task.num_outputs):
        y, s = truth[:, k], scores[:, k]
        if y.min(initial=1) == y.max(initial=0):
            out.append(0.5)
            continue
        if task.kind == "binary" and max_fpr is not None:
            out.append(threshold_at_fpr(s, y, max_fpr))
            continue
        precision, recall, thresholds = precision_recall_curve(y, s)
        f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
        out.append(float(thresholds[int(np.argmax(f1[:-1]))]))
    return out


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _calibrated_thresholds(scores: np.ndarray, truth: np.ndarray) -> list[float]:
    """Platt-scale each output on this data, tune one threshold for micro-F1, map it back per output."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import precision_recall_curve

    if truth.sum() == 0:
        return [0.5] * scores.shape[1]
    fits = []
    calibrated = np.zeros(scores.shape)
    for k in range(scores.shape[1]):
        y, x = truth[:, k], _logit(scores[:, k])[:, None]
        if y.min(initial=1) == y.max(initial=0) or np.ptp(x) == 0:  # nothing to fit: a constant at its rate
            rate = float(y.mean()) if len(y) else 0.0
            fits.append((0.0, float(_logit(rate))))
            calibrated[:, k] = rate
            continue
        model = LogisticRegression(C=1.0).fit(x, y)
        fits.append((float(model.coef_[0, 0]), float(model.intercept_[0])))
        calibrated[:, k] = model.predict_proba(x)[:, 1]
    precision, recall, cuts = precision_recall_curve(truth.ravel(), calibrated.ravel())
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    cut = float(cuts[int(np.argmax(f1[:-1]))])
    out = []
    for slope, intercept in fits:
        # calibrated >= cut  <=>  slope * logit(score) + intercept >= logit(cut)
        if slope > 1e-6:
            out.append(float(1 / (1 + np.exp(-(_logit(cut) - intercept) / slope))))
        else:  # no signal (or an inverted one): the output is called always or never, by its rate
            out.append(0.0 if 1 / (1 + np.exp(-intercept)) >= cut else 1.0 + 1e-6)
    return out


def apply_thresholds(scores: np.ndarray, thresholds: Sequence[float], task: Task) -> np.ndarray:
    """0/1 decisions [n, outputs] (multiclass: one-hot of the argmax)."""
    scores = np.asarray(scores).reshape(len(scores), -1)
    if task.kind == "multiclass":
        return np.eye(scores.shape[1], dtype=np.int32)[scores.argmax(axis=1)] if len(scores) else scores.astype(np.int32)
    return (scores >= np.asarray(thresholds)[None, :]).astype(np.int32)


def frequency_baseline(train_labels: np.ndarray, n: int, task: Task) -> np.ndarray:
    """The label-frequency baseline: every example scored with the training prevalence."""
    prevalence = _as_matrix(train_labels, task).mean(axis=0)
    if task.kind == "binary":
        prevalence = prevalence[:1]
    return np.tile(prevalence[None, :], (n, 1)).astype(np.float32)


# --------------------------------------------------------------------------- metrics


def classification_metrics(scores: np.ndarray, labels: np.ndarray, task: Task,
                           thresholds: Sequence[float]) -> dict:
    """Everything a report needs, as plain numbers.

    Keys: `per_class` (list of {class, precision, recall, f1, ap, support, threshold}),
    `micro_f1`, `macro_f1`, `mAP`, `subset_accuracy` (all outputs right), `label_accuracy`;
    binary adds `recall`, `precision`, `fpr`, `roc_auc`, `tp/fp/tn/fn`; multiclass adds
    `accuracy` and `confusion` ([true][pred] counts).
    """
    from sklearn.metrics import average_precision_score, confusion_matrix, f1_score, precision_recall_fscore_support, roc_auc_score

    scores = np.asarray(scores, np.float32).reshape(len(scores), -1)
    truth = _as_matrix(labels, task).astype(int)
    if task.kind == "binary":
        truth = truth[:, :1]
    predicted = apply_thresholds(scores, thresholds, task)
    n = len(scores)
    out: dict = {"count": n}
    if n == 0:
        return {**out, "per_class": [], "micro_f1": 0.0, "macro_f1": 0.0, "mAP": 0.0, "subset_accuracy": 0.0}
    precision, recall, f1, support = precision_recall_fscore_support(truth, predicted, average=None, zero_division=0)
    per_class, aps = [], []
    names = task.output_names
    for k, name in enumerate(names):
        has_both = 0 < truth[:, k].sum() < n
        ap = float(average_precision_score(truth[:, k], scores[:, k])) if truth[:, k].sum() > 0 else float("nan")
        if truth[:, k].sum() > 0:
            aps.append(ap)
        per_class.append({"class": name, "precision": float(precision[k]), "recall": float(recall[k]),
                          "f1": float(f1[k]), "ap": ap, "support": int(support[k]),
                          "threshold": float(thresholds[k]) if task.kind != "multiclass" else None,
                          "roc_auc": float(roc_auc_score(truth[:, k], scores[:, k])) if has_both else float("nan")})
    out.update(per_class=per_class,
               micro_f1=float(f1_score(truth, predicted, average="micro", zero_division=0)),
               macro_f1=float(np.mean(f1)),
               mAP=float(np.mean(aps)) if aps else 0.0,
               subset_accuracy=float((truth == predicted).all(axis=1).mean()),
               label_accuracy=float((truth == predicted).mean()))
    if task.kind == "binary":
        y, p = truth[:, 0], predicted[:, 0]
        tp, fp = int(((y == 1) & (p == 1)).sum()), int(((y == 0) & (p == 1)).sum())
        tn, fn = int(((y == 0) & (p == 0)).sum()), int(((y == 1) & (p == 0)).sum())
        out.update(tp=tp, fp=fp, tn=tn, fn=fn, recall=tp / max(1, tp + fn), precision=tp / max(1, tp + fp),
                   fpr=fp / max(1, fp + tn), roc_auc=per_class[0]["roc_auc"], ap=per_class[0]["ap"])
    if task.kind == "multiclass":
        true_ids, pred_ids = truth.argmax(axis=1), scores.argmax(axis=1)
        out.update(accuracy=float((true_ids == pred_ids).mean()),
                   confusion=confusion_matrix(true_ids, pred_ids, labels=list(range(len(task.classes)))).tolist())
    return out


def summary_metrics(metrics: dict) -> dict[str, float]:
    """The scalar entries of `classification_metrics` (for model cards and KFP Metrics)."""
    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)}


# --------------------------------------------------------------------------- charts


def add_curves(report, scores: np.ndarray, labels: np.ndarray, task: Task, name: str = "curves",
               max_classes: int = 15) -> None:
    """ROC and precision-recall curves per output, side by side, into a `reports.Report`."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    scores = np.asarray(scores).reshape(len(scores), -1)
    truth = _as_matrix(labels, task)
    with report.figure(name, "ROC (left) and precision-recall (right) curves per class", size=(11, 4.5),
                       ncols=2) as axes:
        roc_ax, pr_ax = axes
        for k, cls in enumerate(task.output_names[:max_classes]):
            y = truth[:, k]
            if y.min(initial=1) == y.max(initial=0):
                continue
            fpr, tpr, _ = roc_curve(y, scores[:, k])
            precision, recall, _ = precision_recall_curve(y, scores[:, k])
            roc_ax.plot(fpr, tpr, lw=1, label=cls)
            pr_ax.plot(recall, precision, lw=1, label=cls)
        roc_ax.plot([0, 1], [0, 1], "k:", lw=0.8)
        roc_ax.set(xlabel="false-positive rate", ylabel="true-positive rate (recall)", title="ROC")
        pr_ax.set(xlabel="recall", ylabel="precision", title="Precision-recall")
        pr_ax.legend(fontsize=7, loc="upper right", ncol=2)


def confusion_matrix_png(confusion: Sequence[Sequence[int]], classes: Sequence[str], title: str = "") -> bytes:
    """A confusion matrix (rows: truth, columns: prediction) with counts in the cells."""
    plt = _plt()
    matrix = np.asarray(confusion)
    fig, ax = plt.subplots(figsize=(1.2 + 0.7 * len(classes), 1.0 + 0.6 * len(classes)))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    peak = matrix.max() if matrix.size else 0
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, str(value), ha="center", va="center", color="white" if value > peak / 2 else "black")
    return _png(fig)


def history_png(history: dict[str, list[float]]) -> bytes:
    """Learning curves: every training metric beside its validation twin."""
    plt = _plt()
    names = [k for k in history if not k.startswith("val_") and k != "learning_rate"]
    fig, axes = plt.subplots(1, max(1, len(names)), figsize=(4 * max(1, len(names)), 3.2), squeeze=False)
    for ax, key in zip(axes[0], names):
        ax.plot(range(1, len(history[key]) + 1), history[key], label="train")
        if f"val_{key}" in history:
            ax.plot(range(1, len(history[f"val_{key}"]) + 1), history[f"val_{key}"], label="validation")
        ax.set(title=key, xlabel="epoch")
        ax.legend(fontsize=8)
    return _png(fig)


def gallery_png(images: Sequence[np.ndarray], captions: Sequence[str], *, columns: int = 6,
                colors: Sequence[str] | None = None, title: str = "", cell_inches: float = 1.9) -> bytes:
    """A grid of images (uint8 [H, W, C] or [H, W]) with a caption under each."""
    plt = _plt()
    count = max(1, len(images))
    columns = max(1, min(columns, count))
    rows = (count + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(cell_inches * columns, cell_inches * 1.45 * rows),
                             squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, (image, caption) in enumerate(zip(images, captions)):
        ax = axes.ravel()[i]
        image = np.asarray(image)
        if image.ndim == 3 and image.shape[-1] == 1:
            image = image[..., 0]
        ax.imshow(image.astype(np.uint8), cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=255)
        ax.set_title(caption, fontsize=7, color=(colors[i] if colors else "black"))
    if not len(images):
        axes[0, 0].text(0.5, 0.5, "nothing to show", ha="center", va="center")
    if title:
        fig.suptitle(title, fontsize=10)
    return _png(fig)


# --------------------------------------------------------------------------- Grad-CAM


def _last_conv_layer(model):
    """The last top-level layer with a 4-D output (a conv layer or a whole backbone)."""
    for layer in reversed(model.layers):
        try:
            shape = layer.output.shape
        except (AttributeError, ValueError):
            continue
        if len(shape) == 4 and not layer.name.startswith(("random_", "rescaling", "gray_to_rgb", "pixels")):
            return layer
    raise ValueError(f"model {model.name} has no convolutional layer for Grad-CAM")


def grad_cam(model, image: np.ndarray, class_index: int = 0, layer_name: str | None = None) -> np.ndarray:
    """A [H, W] map in 0..1 of where `model` looked to score `class_index` for one image.

    Grad-CAM (Selvaraju et al. 2017): feature maps of the last conv layer weighted by the
    mean gradient of the class score, ReLU'd and resized to the image.
    """
    import keras
    import tensorflow as tf

    layer = model.get_layer(layer_name) if layer_name else _last_conv_layer(model)
    probe = keras.Model(model.inputs, [layer.output, model.output])
    x = tf.convert_to_tensor(np.asarray(image, np.float32)[None])
    with tf.GradientTape() as tape:
        features, scores = probe(x, training=False)
        target = scores[:, class_index]
    grads = tape.gradient(target, features)
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * features, axis=-1))[0]
    cam = tf.image.resize(cam[..., None], image.shape[:2])[..., 0].numpy()
    peak = cam.max()
    return (cam / peak if peak > 0 else cam).astype(np.float32)


def grad_cam_png(model, image: np.ndarray, class_index: int = 0, title: str = "", layer_name: str | None = None) -> bytes:
    """The image beside its Grad-CAM overlay."""
    plt = _plt()
    heat = grad_cam(model, image, class_index, layer_name)
    shown = np.asarray(image).astype(np.uint8)
    gray = shown.shape[-1] == 1
    fig, axes = plt.subplots(1, 2, figsize=(6, 3.6))
    for ax in axes:
        ax.imshow(shown[..., 0] if gray else shown, cmap="gray" if gray else None)
        ax.axis("off")
    axes[1].imshow(heat, cmap="jet", alpha=0.45)
    axes[0].set_title("input", fontsize=8)
    axes[1].set_title(title or f"Grad-CAM, class {class_index}", fontsize=8)
    return _png(fig)
