"""Acceptance on real posters: ../shared/data/posters (2,000 posters, 15 genres), test =
imdbId % 7 == 0. A small configuration must beat the label-frequency baseline on mAP and
micro-F1 by margins that every seed cleared (CPU, about a minute)."""
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
    card, _ = train(str(tmp_path / "data"), str(tmp_path / "model"), epochs=5, dense_units=128, balance=True,
                    thresholds="calibrated", seed=0)
    out = evaluate(str(tmp_path / "data"), str(tmp_path / "model"), str(tmp_path / "eval"))
    model, baseline = out["summary"]["model"], out["summary"]["frequency_baseline"]
    print(json.dumps({"model": model, "baseline": baseline}, indent=1))
    assert model["mAP"] > baseline["mAP"] + MAP_MARGIN, (model["mAP"], baseline["mAP"])
    assert model["micro_f1"] > baseline["micro_f1"] + MICRO_F1_MARGIN, (model["micro_f1"], baseline["micro_f1"])
    report = (tmp_path / "eval" / "report" / "report.md").read_text()
    assert "| mAP |" in report and "label-frequency baseline" in report
