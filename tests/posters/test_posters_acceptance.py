"""Acceptance on real posters: ../shared/data/posters (2,000 posters, 15 genres), test =
imdbId % 7 == 0. A small configuration must beat the label-frequency baseline on mAP and
micro-F1 (CPU, about a minute)."""
from __future__ import annotations

import json

import pytest


@pytest.mark.slow
@pytest.mark.shared_data
def test_small_classifier_beats_label_frequencies(shared_data, tmp_path):
    from reelworks.posters.evaluate import evaluate
    from reelworks.posters.prep import prep
    from reelworks.posters.train import train

    manifest = prep(str(shared_data / "posters" / "posters_2000.csv"), str(tmp_path / "data"), ratio=20)
    assert len(manifest["classes"]) == 15 and manifest["kept"] >= 1980
    assert manifest["splits"]["test"]["count"] == 286  # imdbId % 7 == 0 (one duplicate id dropped)
    card, _ = train(str(tmp_path / "data"), str(tmp_path / "model"), epochs=5, dense_units=128)
    out = evaluate(str(tmp_path / "data"), str(tmp_path / "model"), str(tmp_path / "eval"))
    model, baseline = out["summary"]["model"], out["summary"]["frequency_baseline"]
    print(json.dumps({"model": model, "baseline": baseline}, indent=1))
    assert model["mAP"] > baseline["mAP"]
    assert model["micro_f1"] > baseline["micro_f1"]
    report = (tmp_path / "eval" / "report" / "report.md").read_text()
    assert "| mAP |" in report and "label-frequency baseline" in report
