"""The shared Keras image classifier (reelworks.imageclf): data, models, training, evaluation.

Tiny images and two or three epochs: these check behaviour, not accuracy."""
from __future__ import annotations

import json

import numpy as np
import pytest

from reelworks.errors import ReelworksError


def _images(tmp_path, n=60, size=(24, 32)):
    """n PNGs of three colours (class = colour) plus noise; returns paths and class ids."""
    from PIL import Image

    rng = np.random.default_rng(0)
    paths, classes = [], []
    for i in range(n):
        c = i % 3
        pixels = np.full((size[1], size[0], 3), 40, np.uint8)
        pixels[..., c] = 210
        pixels = (pixels + rng.integers(0, 30, pixels.shape)).clip(0, 255).astype(np.uint8)
        path = tmp_path / f"{i}.png"
        Image.fromarray(pixels).save(path)
        paths.append(str(path))
        classes.append(c)
    return paths, np.asarray(classes)


def test_labels_and_weights():
    import pandas as pd

    from reelworks.imageclf import data, spec

    table = pd.DataFrame({"path": ["a", "b", "c"], "genres": ["Drama|Comedy", "Drama", ""], "shot": ["MCU", "LS", "MCU"]})
    ml = spec.Task("multilabel", ("Comedy", "Drama"))
    assert data.encode_labels(table, ml, label_column="genres").tolist() == [[1, 1], [0, 1], [0, 0]]
    binary = spec.Task("binary", ("other", "MCU"))
    with pytest.raises(ReelworksError, match="unknown label 'LS'"):
        data.encode_labels(table, binary, label_column="shot")
    mc = spec.Task("multiclass", ("LS", "MCU"))
    assert data.encode_labels(table, mc, label_column="shot").tolist() == [1, 0, 1]
    assert data.pos_weight(np.array([[1, 0], [0, 0], [0, 0], [0, 1]])) == [3.0, 3.0]
    assert data.class_weight(np.array([0, 0, 0, 1]), 2) == pytest.approx([4 / 6, 2.0])
    with pytest.raises(ReelworksError):
        spec.Task("binary", ("a", "b", "c"))
    with pytest.raises(ReelworksError):
        spec.TrainConfig(arch="resnet9000")
    cfg = spec.TrainConfig(epochs=3)
    image = spec.ImageSpec(32, 24, 1)
    assert cfg.version(ml, image) == spec.TrainConfig(epochs=3, cache="").version(ml, image)  # cache is not a hyper-parameter
    assert cfg.version(ml, image) != spec.TrainConfig(epochs=4).version(ml, image)


def test_weighted_losses_match_numpy():
    from reelworks.imageclf.training import WeightedBinaryCrossentropy, WeightedSparseCrossentropy

    y = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    p = np.array([[0.8, 0.3], [0.4, 0.9]], np.float32)
    w = np.array([2.0, 3.0])
    expected = np.mean(-(w * y * np.log(p) + (1 - y) * np.log(1 - p)), axis=1).mean()
    assert float(WeightedBinaryCrossentropy([2.0, 3.0])(y, p)) == pytest.approx(expected, rel=1e-5)
    probs = np.array([[0.7, 0.3], [0.2, 0.8]], np.float32)
    labels = np.array([0, 1])
    expected = np.mean([-1.0 * np.log(0.7), -5.0 * np.log(0.8)])
    assert float(WeightedSparseCrossentropy([1.0, 5.0])(labels, probs)) == pytest.approx(expected, rel=1e-5)


def test_tfrecords_round_trip_and_datasets(tmp_path):
    from reelworks.imageclf import data, spec

    task = spec.Task("multiclass", ("a", "b", "c"))
    image = spec.ImageSpec(16, 12, 1)
    pixels = np.random.default_rng(1).integers(0, 255, (7, 16, 12, 1), dtype=np.uint8)
    names = data.write_tfrecords([data.encode_png(p) for p in pixels], np.array([0, 1, 2, 0, 1, 2, 0]),
                                 [f"id{i}" for i in range(7)], tmp_path, "train", shards=3)
    assert names == [f"train-0000{i}-of-00003.tfrecord" for i in range(3)]
    ids, back, labels = data.read_records([tmp_path / n for n in names], image, task)
    order = np.argsort([int(i[2:]) for i in ids])
    assert np.array_equal(back[order], pixels) and labels[order].tolist() == [0, 1, 2, 0, 1, 2, 0]
    ds = data.make_dataset(data.RecordsSource([str(tmp_path / n) for n in names], 7), image, task,
                           batch_size=4, training=True)
    batches = list(ds)
    assert [b[0].shape[0] for b in batches] == [4, 3] and batches[0][0].shape[1:] == (16, 12, 1)
    assert batches[0][0].dtype.name == "float32" and batches[0][1].dtype.name == "int32"


@pytest.mark.parametrize("kind", ["multilabel", "binary", "multiclass"])
def test_train_save_load_predict(kind, tmp_path):
    from reelworks.imageclf import data, evaluation, spec, training

    paths, classes = _images(tmp_path)
    if kind == "multilabel":
        task, labels = spec.Task(kind, ("r", "g", "b")), np.eye(3, dtype=np.float32)[classes]
        weights = data.pos_weight(labels[:45])
    elif kind == "binary":
        task, labels = spec.Task(kind, ("other", "red")), (classes == 0).astype(np.float32)[:, None]
        weights = data.pos_weight(labels[:45])
    else:
        task, labels = spec.Task(kind, ("r", "g", "b")), classes.astype(np.int32)
        weights = data.class_weight(labels[:45], 3)
    image = spec.ImageSpec(32, 24, 3)
    config = spec.TrainConfig(arch="posters_cnn", epochs=4, batch_size=8, dense_units=16, learning_rate=3e-3)
    out = str(tmp_path / "model")
    result = training.train(data.FilesSource(paths[:45], labels[:45]), data.FilesSource(paths[45:], labels[45:]),
                            task=task, image=image, config=config, output_uri=out, class_weights=weights,
                            max_fpr=0.3 if kind == "binary" else None)
    card = json.loads((tmp_path / "model" / "model_card.json").read_text())
    assert card["version"] == config.version(task, image) and card["epochs_run"] == 4
    assert len(card["thresholds"]) == (3 if kind != "binary" else 1)
    assert len(result.history["loss"]) == 4 and (tmp_path / "model" / "training.png").stat().st_size > 1000
    assert not (tmp_path / "model" / "checkpoint").exists()  # removed once training finished
    model, loaded = training.load(out)
    assert loaded.task_spec == task and loaded.image_spec == image
    batch = data.make_dataset(data.FilesSource(paths[45:], labels[45:]), image, task, batch_size=15)
    x, _ = next(iter(batch))
    np.testing.assert_allclose(evaluation.predict_arrays(model, x.numpy()), result.val_scores, atol=1e-5)
    # Colours are trivially separable: four epochs must learn them.
    metrics = evaluation.classification_metrics(result.val_scores, result.val_labels, task, loaded.thresholds)
    assert metrics["macro_f1"] > 0.6, metrics
    if kind == "binary":
        assert metrics["fpr"] <= 0.3 + 1e-9 and {"recall", "precision", "roc_auc"} <= set(metrics)
    if kind == "multiclass":
        assert np.asarray(metrics["confusion"]).sum() == 15
    cam = evaluation.grad_cam(model, x.numpy()[0], 0)
    assert cam.shape == (32, 24) and 0 <= cam.min() and cam.max() <= 1


def test_frozen_pretrained_backbone_trains_only_the_head(tmp_path):
    """efficientnet_lite, frozen: features computed once, the head trained on them, the ImageNet
    weights untouched; the saved model is whole (pixels in), with Grad-CAM on the backbone."""
    from reelworks import image_features
    from reelworks.imageclf import data, evaluation, spec, training

    paths, classes = _images(tmp_path, n=36, size=(48, 64))
    task, labels = spec.Task("multilabel", ("r", "g", "b")), np.eye(3, dtype=np.float32)[classes]
    image = spec.ImageSpec(64, 48, 3)
    config = spec.TrainConfig(arch="efficientnet_lite", freeze_backbone=True, epochs=3, batch_size=8,
                              learning_rate=1e-2)
    result = training.train(data.FilesSource(paths[:24], labels[:24]), data.FilesSource(paths[24:], labels[24:]),
                            task=task, image=image, config=config, output_uri=str(tmp_path / "model"))
    model, card = training.load(str(tmp_path / "model"))
    state = image_features.load_state_dict()
    np.testing.assert_array_equal(model.get_layer("head_conv").get_weights()[0],
                                  state["_conv_head.weight"].transpose(2, 3, 1, 0))
    np.testing.assert_array_equal(model.get_layer("block7_depthwise_bn").get_weights()[2],
                                  state["_blocks.7._bn1.running_mean"])
    assert card.epochs_run == 3 and card.parameters > 3_000_000
    x, _ = next(iter(data.make_dataset(data.FilesSource(paths[24:], labels[24:]), image, task, batch_size=12)))
    np.testing.assert_allclose(evaluation.predict_arrays(model, x.numpy()), result.val_scores, atol=1e-5)
    metrics = evaluation.classification_metrics(result.val_scores, result.val_labels, task, card.thresholds)
    assert metrics["mAP"] > 0.9, metrics  # three colours: ImageNet features tell them apart at once
    cam = evaluation.grad_cam(model, x.numpy()[0], int(classes[24]))
    assert cam.shape == (64, 48) and cam.max() == pytest.approx(1.0)


def test_resume_after_interruption_on_s3(s3_bucket, tmp_path):
    import keras

    from reelworks import storage
    from reelworks.imageclf import data, spec, training

    paths, classes = _images(tmp_path, n=30)
    task, labels = spec.Task("multiclass", ("r", "g", "b")), classes.astype(np.int32)
    image = spec.ImageSpec(16, 12, 3)
    config = spec.TrainConfig(epochs=3, batch_size=10, dense_units=8)
    out = f"{s3_bucket}/models/resume"

    class Crash(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise RuntimeError("node lost")

    with pytest.raises(RuntimeError, match="node lost"):
        training.train(data.FilesSource(paths[:20], labels[:20]), data.FilesSource(paths[20:], labels[20:]),
                       task=task, image=image, config=config, output_uri=out, callbacks=[Crash()])
    assert storage.list_keys(f"{out}/checkpoint")  # the checkpoint reached S3
    assert not storage.exists(f"{out}/model_card.json")  # no card: not finished
    with pytest.raises(ReelworksError, match="no finished model"):
        training.load(out)
    result = training.train(data.FilesSource(paths[:20], labels[:20]), data.FilesSource(paths[20:], labels[20:]),
                            task=task, image=image, config=config, output_uri=out)
    # Epochs 1-2 came from the first run, only epoch 3 was trained again.
    assert result.card.epochs_run == 3 and len(result.history["loss"]) == 3
    assert not storage.list_keys(f"{out}/checkpoint")
    model, card = training.load(out)
    assert card.version == result.card.version


def test_backbone_weights_from_a_keras_file(tmp_path):
    import keras

    from reelworks.imageclf import models, spec

    image = spec.ImageSpec(32, 32, 1)
    task = spec.Task("binary", ("other", "MCU"))
    donor = keras.applications.MobileNetV3Small(input_shape=(32, 32, 3), include_top=False, weights=None,
                                                include_preprocessing=True)
    donor.save(tmp_path / "backbone.keras")
    model = models.build_model(image, task, spec.TrainConfig(arch="mobilenet_v3_small",
                                                             weights=str(tmp_path / "backbone.keras")))
    backbone = next(layer for layer in model.layers if isinstance(layer, keras.Model))
    for mine, theirs in zip(backbone.get_weights(), donor.get_weights()):
        np.testing.assert_array_equal(mine, theirs)
    assert model.output_shape == (None, 1)
    with pytest.raises(ReelworksError, match="backbone weights must be"):
        (tmp_path / "weights.bin").write_bytes(b"\x00")
        models.build_model(image, task, spec.TrainConfig(arch="mobilenet_v3_small", weights=str(tmp_path / "weights.bin")))


def test_thresholds_metrics_and_pictures():
    from reelworks.imageclf import evaluation, spec
    from reelworks.reports import Report

    task = spec.Task("binary", ("other", "MCU"))
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.2, 0.1])[:, None]
    labels = np.array([1, 1, 0, 1, 0, 0, 1, 0])[:, None]
    # FPR <= 0.25 allows one negative (0.7) above the threshold: threshold 0.6, recall 3/4.
    assert evaluation.threshold_at_fpr(scores, labels, 0.25) == pytest.approx(0.6)
    (best_f1,) = evaluation.tune_thresholds(scores, labels, task)
    m = evaluation.classification_metrics(scores, labels, task, [0.6])
    assert (m["tp"], m["fp"], m["tn"], m["fn"]) == (3, 1, 3, 1) and m["fpr"] == 0.25 and m["recall"] == 0.75
    assert evaluation.classification_metrics(scores, labels, task, [best_f1])["per_class"][0]["f1"] >= m["per_class"][0]["f1"]
    ml = spec.Task("multilabel", ("a", "b"))
    truth = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    base = evaluation.frequency_baseline(truth, 4, ml)
    assert base.tolist() == [[0.5, 0.5]] * 4
    noisy = np.array([[0.9, 0.2], [0.3, 0.6], [0.7, 0.8], [0.1, 0.4]])
    shared = evaluation.tune_thresholds(noisy, truth, ml, mode="global")
    assert shared[0] == shared[1] == pytest.approx(0.6)  # every positive (>= 0.6) in, every negative out
    perfect = evaluation.classification_metrics(truth.astype(float), truth, ml, [0.5, 0.5])
    assert perfect["mAP"] == perfect["micro_f1"] == perfect["subset_accuracy"] == 1.0
    report = Report("t")
    evaluation.add_curves(report, scores, labels, task)
    assert "curves.png" in report.images
    for png in (evaluation.confusion_matrix_png([[3, 1], [1, 3]], ["other", "MCU"]),
                evaluation.gallery_png([np.zeros((10, 8, 1), np.uint8)] * 3, ["a", "b", "c"]),
                evaluation.history_png({"loss": [1.0, 0.5], "val_loss": [1.1, 0.7]})):
        assert png.startswith(b"\x89PNG")


def test_strategy_and_chief_from_tf_config(monkeypatch):
    from reelworks.imageclf import training

    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert training.cluster_workers() == 1 and training.is_chief()
    assert type(training.select_strategy()).__name__ == "_DefaultDistributionStrategy"
    cluster = {"worker": ["w0:2222", "w1:2222"]}
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 1}}))
    assert training.cluster_workers() == 2 and not training.is_chief()
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}}))
    assert training.is_chief()
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {**cluster, "chief": ["c:2222"]},
                                                "task": {"type": "worker", "index": 0}}))
    assert training.cluster_workers() == 3 and not training.is_chief()
    assert training.configure_precision("auto") == "float32"  # no GPU here


def test_mixed_precision_keeps_float32_scores(tmp_path):
    """mixed_float16 (what GPUs get) trains, keeps float32 probabilities, and saves/loads."""
    import keras

    from reelworks.imageclf import data, spec, training

    paths, classes = _images(tmp_path, n=20, size=(12, 16))
    task, labels = spec.Task("multilabel", ("r", "g", "b")), np.eye(3, dtype=np.float32)[classes]
    try:
        result = training.train(data.FilesSource(paths[:14], labels[:14]), data.FilesSource(paths[14:], labels[14:]),
                                task=task, image=spec.ImageSpec(16, 12, 3), output_uri=str(tmp_path / "m"),
                                config=spec.TrainConfig(epochs=1, batch_size=7, dense_units=8, mixed_precision="on"),
                                class_weights=[2.0, 2.0, 2.0])
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert result.card.precision == "mixed_float16"
    assert result.val_scores.dtype == np.float32 and np.isfinite(result.history["loss"]).all()
    model, _ = training.load(str(tmp_path / "m"))
    assert model.get_layer("scores").dtype_policy.compute_dtype == "float32"
