"""`films train-shot-classifier` and `films classify` with the trained model; data options."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from films_helpers import run_cli

from reelworks.errors import ReelworksError
from reelworks.films.shot_classifier import (capture_groups, read_labelled_frames, remove_imbalance,
                                             split_frames)


def test_capture_groups_make_films_from_snapshot_times():
    files = ["4-MCU/vlcsnap-2018-03-24-05h36m48s432.png", "0-ELS/vlcsnap-2018-03-24-05h39m56s384.png",
             "x/vlcsnap-2018-03-24-07h00m00s000.png", "y/frame.png"]
    groups = capture_groups(files)
    assert groups[0] == groups[1] != groups[2]
    assert groups[3] not in groups[:3]


def test_splits_and_imbalance_removal():
    table = pd.DataFrame({"target": [1] * 30 + [0] * 70, "film": [f"f{i % 10}" for i in range(100)]})
    train, val, test = split_frames(table, "mixed", seed=1)
    assert len(set(train) | set(val) | set(test)) == 100 and len(test) == 20 and len(val) == 20
    assert table.target[test].sum() == 6  # stratified
    train, val, test = split_frames(table, "unwatched", seed=1)
    films = [set(table.film[idx]) for idx in (train, val, test)]
    assert not (films[0] & films[1] or films[0] & films[2] or films[1] & films[2])  # whole films held out
    kept = remove_imbalance(np.arange(100), table.target.to_numpy(), 50)
    assert (table.target[kept] == 0).sum() == 35 and (table.target[kept] == 1).sum() == 30
    with pytest.raises(ReelworksError, match="unknown split"):
        split_frames(table, "sideways")


def test_grouped_folds_keep_each_viewing_on_one_side():
    from reelworks.films.shot_classifier import cross_validate_features
    from reelworks.films.shot_features import folds_of, scalar_count

    rng = np.random.default_rng(0)
    groups = np.repeat([f"viewing-{i}" for i in range(12)], 10)
    y = np.tile([1, 1, 1, 0, 0, 0, 0, 0, 0, 0], 12)
    for train, held in folds_of(y, 4, seed=0, groups=groups):
        assert not set(groups[train]) & set(groups[held])
        assert 0 < y[held].sum() < len(held)  # stratified: both classes in every held-out fold
    # A random k-fold splits viewings: the leak grouped folds exist to close.
    assert any(set(groups[t]) & set(groups[h]) for t, h in folds_of(y, 4, seed=0))
    # Features that identify the viewing, labels that do not depend on the image: a random k-fold
    # "learns" them from the viewing's other stills, grouped folds cannot.
    viewing_label = rng.integers(0, 2, 12)
    y = np.repeat(viewing_label, 10)
    viewing = np.repeat(rng.normal(size=(12, 5)), 10, axis=0) + rng.normal(scale=0.01, size=(120, 5))
    # In the features model's layout: the scalar block (viewing fingerprint first), then the HOG block.
    x = np.hstack([viewing, np.zeros((120, scalar_count() - 5)), rng.normal(size=(120, 1764))]).astype(np.float32)
    heights = np.zeros(120)
    mixed = cross_validate_features(x, y, heights, 3, 0.3, seed=0)
    grouped = cross_validate_features(x, y, heights, 3, 0.3, seed=0, groups=groups)
    assert grouped["grouped"] and grouped["groups"] == 12 and not mixed["grouped"]
    assert mixed["model"]["roc_auc"] > 0.95  # leaked
    assert grouped["model"]["roc_auc"] < 0.8  # honest: nothing to learn across viewings


def test_frames_without_labels_are_a_clear_error(tmp_path):
    (tmp_path / "frames").mkdir()
    (tmp_path / "frames" / "a.jpg").write_bytes(b"")
    with pytest.raises(ReelworksError, match="no labelled frames"):
        read_labelled_frames(str(tmp_path / "frames"))
    (tmp_path / "frames" / "labels.csv").write_text("file,shot_type\na.jpg,WIDE\n")
    with pytest.raises(ReelworksError, match="unknown shot types"):
        read_labelled_frames(str(tmp_path / "frames"))
    code, text = run_cli("films", "train-shot-classifier", "--data", str(tmp_path / "nope"), "-o", str(tmp_path / "m"))
    assert code == 2 and "error:" in text and "not found" in text


def test_hoha_labels_read(shared_data):
    table = read_labelled_frames(str(shared_data / "shots" / "hoha"))
    assert len(table) == 555 and (table.shot_type == "MCU").sum() == 132
    assert table.film.nunique() > 5


@pytest.mark.slow
def test_train_cnn_then_classify(shared_data, tmp_path, synthetic_films):
    """A small, quick CNN on a HOHA subset: the outputs and the report are all there."""
    model = tmp_path / "model"
    code, text = run_cli("films", "train-shot-classifier", "--data", str(shared_data / "shots" / "hoha"),
                         "-o", str(model), "--model-kind", "cnn", "--size", "64", "--epochs", "2", "--limit", "180",
                         "--split", "unwatched")
    assert code == 0, text
    assert "face heuristic" in text and "goal recall >= 0.81" in text
    summary = json.loads((model / "shot_classifier.json").read_text())
    # A floor, not a range: on this small split (180 stills, seeded) the fused model measured ROC
    # AUC 1.0 under the tests' deterministic ops (0.967 without them) against the CNN alone's
    # 0.633 (0.600): the face features must keep carrying the fusion.
    test = summary["test"]
    assert test["model"]["roc_auc"] >= 0.8 and test["model"]["ap"] >= 0.75, test["model"]
    assert test["model"]["ap"] >= test["cnn_only"]["ap"], test
    assert summary["fusion"] and 0 < summary["threshold"] < 1
    for png in ("roc_pr", "confusion_matrix", "true_positives", "false_negatives", "grad_cam"):
        assert (model / f"{png}.png").read_bytes()[:4] == b"\x89PNG", png
    assert "NOT met" in (model / "report.md").read_text() or "MET" in (model / "report.md").read_text()

    from reelworks.films.classify import classify_frames
    from reelworks.films.extract import extract_frames

    extract_frames(str(synthetic_films[0]), str(tmp_path / "frames"), every=1.5)
    rows = classify_frames(str(tmp_path / "frames"), str(tmp_path / "probs"), model_uri=str(model))
    assert len(rows) == 4 and all(r["source"] == "model" and 0 <= r["mcu_prob"] <= 1 for r in rows)


def test_still_features_are_scale_measurements():
    from reelworks.films.shot_features import scalar_count, scalar_features, still_features

    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (180, 320, 3), dtype=np.uint8)
    named = scalar_features(image)
    assert named["n_faces"] == 0 and named["face_h"] == 0 and named["aspect"] == pytest.approx(320 / 180)
    vector = still_features(image)
    assert vector.shape == (scalar_count() + 1764,) and np.isfinite(vector).all()


@pytest.mark.slow
def test_train_features_then_classify(shared_data, tmp_path, synthetic_films):
    """The default command (boosted shot-scale features, BlazeFace faces) on all 555 HOHA stills
    meets the moviegoer's goal, recall >= 0.81 at FPR <= 0.30, in 5-fold cross-validation grouped
    by viewing; the report, a skops model (no pickle) that `films classify` applies.

    Measured (deterministic; the grouped 5-fold CV of this command, seed 0, and of the same CV code
    with seed 1, `--seed 1`): recall 0.833 / 0.864
    at FPR 0.243 / 0.248, ROC AUC 0.901 / 0.900 (before the Haar extras were dropped for BlazeFace
    and the boosting went to 32 bins: 0.841 / 0.871 at 0.260 / 0.246, AUC 0.899 / 0.908; 266 s
    then, 127 s now at load average ~4). With Haar faces (255 bins): recall 0.788 at FPR 0.293,
    AUC 0.809 (seed 0), goal not met."""
    import sklearn.ensemble  # noqa: F401  loads the OpenMP runtime that threadpool_limits then limits
    from threadpoolctl import threadpool_limits

    model = tmp_path / "model"
    # 66 gradient-boosting fits on ~440 stills each (nested, grouped and mixed CV). On a busy machine
    # the barriers of 2 OpenMP threads turn each sub-second fit into seconds; one thread is as fast on
    # a quiet one. The figures and the model are the same with any thread count.
    with threadpool_limits(1, user_api="openmp"):
        code, text = run_cli("films", "train-shot-classifier", "--data", str(shared_data / "shots" / "hoha"),
                             "-o", str(model))
    assert code == 0, text
    assert "5-fold cross-validated recall" in text and "grouped by viewing" in text and "face heuristic" in text
    summary = json.loads((model / "shot_classifier.json").read_text())
    assert summary["model_kind"] == "features" and (model / "features_model.skops").is_file()
    assert summary["options"]["face_detector"] == "blazeface"
    cv = summary["cv"]
    assert cv["count"] == 555 and cv["grouped"] and cv["groups"] >= 15 and not summary["cv_mixed"]["grouped"]
    # The goal itself, which seed 0 clears by 0.02 in recall and 0.06 in FPR (seed 1: 0.05 and 0.05).
    assert cv["model"]["recall"] >= 0.81 and cv["model"]["fpr"] <= 0.30, cv["model"]
    assert summary["goal"]["met"] and summary["goal"]["met_cv"]
    # Haar's figure on these folds, before BlazeFace: recall 0.788 at FPR 0.293, ROC AUC 0.809 (README).
    assert cv["model"]["roc_auc"] >= 0.87 and cv["model"]["roc_auc"] > cv["face_heuristic"]["roc_auc"]
    assert summary["goal"]["judged_on"] == "grouped_cv"
    assert summary["goal"]["met"] == summary["goal"]["met_cv"]
    for png in ("roc_pr", "confusion_matrix", "true_positives", "false_negatives"):
        assert (model / f"{png}.png").read_bytes()[:4] == b"\x89PNG", png
    assert "Cross-validated (5-fold, grouped by viewing" in (model / "report.md").read_text()

    from reelworks.films.classify import classify_frames
    from reelworks.films.extract import extract_frames

    extract_frames(str(synthetic_films[0]), str(tmp_path / "frames"), every=1.5)
    rows = classify_frames(str(tmp_path / "frames"), str(tmp_path / "probs"), model_uri=str(model), batch_size=3)
    assert len(rows) == 4 and all(r["source"] == "model" and 0 <= r["mcu_prob"] <= 1 for r in rows)
