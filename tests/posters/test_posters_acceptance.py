"""Acceptance on real posters: ../shared/data/posters (2,000 and 4,000 posters, 15 genres), test =
imdbId % 7 == 0. The from-scratch CNN and the default, pretrained classifier must beat the
label-frequency baseline on mAP and micro-F1 by margins that every seed cleared (CPU)."""
from __future__ import annotations

import json

import pytest

# Measured over seeds 0-4 of this exact configuration (deterministic: TF_DETERMINISTIC_OPS and
# 2 intra-op threads from tests/conftest.py; seed 0 trained twice gave the same figures to the bit).
# Thresholds "calibrated" (per-genre Platt scaling, then one micro-F1 threshold; the baseline's
# thresholds are tuned the same way):
#
#   seed          0       1       2       3       4     | baseline
#   mAP         0.2588  0.2324  0.2445  0.2494  0.2455  | 0.1650
#   micro-F1    0.3628  0.3605  0.3652  0.3514  0.3581  | 0.3267
#
# mAP leads by 0.067-0.094 (sd 0.010 over seeds): the test asks for 0.04. micro-F1 leads by
# 0.025-0.039 (mean 0.033, sd 0.005): the test asks for 0.015. For comparison, one raw "global"
# threshold gave micro-F1 0.350/0.339/0.355/0.350/0.329 against 0.331 (seed 4 below the baseline):
# that was the flaky CI. Measured with `nice python bench/seed_spread.py posters`.
MAP_MARGIN = 0.04
MICRO_F1_MARGIN = 0.015


@pytest.mark.slow
@pytest.mark.shared_data
def test_small_classifier_beats_label_frequencies(shared_data, tmp_path):
    from reelworks.posters.evaluate import evaluate
    from reelworks.posters.prep import prep
    from reelworks.posters.train import train

    manifest = prep(str(shared_data / "posters" / "posters_2000.csv"), str(tmp_path / "data"), ratio=20)
    assert len(manifest["classes"]) == 15 and manifest["kept"] >= 1980
    assert manifest["splits"]["test"]["count"] == 286  # imdbId % 7 == 0 (one duplicate id dropped)
    card, _ = train(str(tmp_path / "data"), str(tmp_path / "model"), arch="posters_cnn", epochs=5, dense_units=128,
                    balance=True, thresholds="calibrated", seed=0)
    out = evaluate(str(tmp_path / "data"), str(tmp_path / "model"), str(tmp_path / "eval"))
    model, baseline = out["summary"]["model"], out["summary"]["frequency_baseline"]
    print(json.dumps({"model": model, "baseline": baseline}, indent=1))
    assert model["mAP"] > baseline["mAP"] + MAP_MARGIN, (model["mAP"], baseline["mAP"])
    assert model["micro_f1"] > baseline["micro_f1"] + MICRO_F1_MARGIN, (model["micro_f1"], baseline["micro_f1"])
    report = (tmp_path / "eval" / "report" / "report.md").read_text()
    assert "| mAP |" in report and "label-frequency baseline" in report


# The default classifier: ImageNet EfficientNet-Lite0 features (the packaged weights, frozen, so
# computed once) and a trained sigmoid head, on the 4,000 shared posters prepared at ratio 70
# (127x188). Measured with `nice python bench/seed_spread.py pretrained --seeds 0,1,2` (`posters train`
# defaults, calibrated thresholds; this test, seed 0, gave seed 0's figures again):
#
#   seed          0       1       2     | baseline
#   mAP         0.3724  0.3723  0.3673  | 0.1677
#   micro-F1    0.4484  0.4564  0.4526  | 0.3300
#
# mAP leads by 0.200-0.205: the test asks for 0.15. micro-F1 leads by 0.118-0.126: the test asks for
# 0.08. (The from-scratch small_cnn on the same posters at 36x54: mAP 0.292, micro-F1 0.401.) The
# slowest test of the posters: 122 s on the 2-core machine shared with another job (load ~4; prep
# ~30 s, train 62 s of which the features of 3,434 posters 50 s, evaluate 24 s, predict 3 s), down
# from 4-7 minutes when the features ran eagerly and prep's PNGs used level 6; the figures above
# came out again to the bit.
PRETRAINED_MAP_MARGIN = 0.15
PRETRAINED_MICRO_F1_MARGIN = 0.08


@pytest.mark.slow
@pytest.mark.shared_data
def test_pretrained_classifier_beats_label_frequencies(shared_data, tmp_path):
    from reelworks.posters.evaluate import evaluate
    from reelworks.posters.predict import predict
    from reelworks.posters.prep import prep
    from reelworks.posters.train import train

    labels = shared_data / "posters" / "posters_4000.csv"
    manifest = prep(str(labels), str(tmp_path / "data"), ratio=70)
    assert manifest["image"] == {"height": 188, "width": 127, "channels": 3} and manifest["kept"] >= 3980
    card, _ = train(str(tmp_path / "data"), str(tmp_path / "model"))  # the defaults
    assert card.arch == "efficientnet_lite" and card.config["freeze_backbone"]
    out = evaluate(str(tmp_path / "data"), str(tmp_path / "model"), str(tmp_path / "eval"), gallery=6)
    model, baseline = out["summary"]["model"], out["summary"]["frequency_baseline"]
    print(json.dumps({"model": model, "baseline": baseline, "train_seconds": card.train_seconds}, indent=1))
    assert model["mAP"] > baseline["mAP"] + PRETRAINED_MAP_MARGIN, (model["mAP"], baseline["mAP"])
    assert model["micro_f1"] > baseline["micro_f1"] + PRETRAINED_MICRO_F1_MARGIN, (model["micro_f1"],
                                                                                     baseline["micro_f1"])
    assert (tmp_path / "eval" / "report" / "gradcam.png").stat().st_size > 500  # Grad-CAM reaches the backbone
    # The saved model is whole (backbone included): `posters predict` reads any poster file.
    poster = next((shared_data / "posters" / "images").glob("*.jpg"))
    (result,) = predict(str(tmp_path / "model"), [str(poster)])
    assert set(result["genres"]) == set(manifest["classes"]) and len(result["top"]) == 3
