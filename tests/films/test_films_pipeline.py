"""The `moviegoer` pipeline: compiled settings, and a whole local run over two films."""
from __future__ import annotations

import json

import pytest
import yaml


def test_compiles_with_parallelism_and_s3(tmp_path):
    from reelworks import kubeflow

    path = kubeflow.compile_pipeline("moviegoer", tmp_path / "moviegoer.yaml")
    docs = list(yaml.safe_load_all(path.read_text()))
    text = path.read_text()
    assert "parallelismLimit: 4" in text
    platform = docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    with_secret = [name for name, spec in platform.items() if spec.get("secretAsEnv")]
    assert any("extract-frames" in n for n in with_secret) and any("detect-shots" in n for n in with_secret)


def test_tfjob_for_multi_node_training():
    from reelworks.films.distributed import build_tfjob
    from reelworks.films.shot_classifier import TrainOptions

    job = build_tfjob("s3://b/hoha", "s3://b/models/mcu", TrainOptions(epochs=3, split="unwatched"), workers=3,
                      namespace="reelworks")
    spec = job.spec.tf_replica_specs["Worker"]
    assert spec.replicas == 3
    command = spec.template.spec.containers[0].command + (spec.template.spec.containers[0].args or [])
    assert command[:3] == ["reelworks", "films", "train-shot-classifier"]
    assert "--split" in command and "unwatched" in command and "--face-features" in command


@pytest.mark.slow
def test_local_run_writes_a_report_per_film(synthetic_films, tmp_path):
    from reelworks import kubeflow

    out = tmp_path / "reports"
    kubeflow.run_local("moviegoer", {"films": [str(f) for f in synthetic_films], "output": str(out), "every": 2.0},
                       pipeline_root=str(tmp_path / "root"))
    for film in synthetic_films:
        report = json.loads((out / film.stem / "report.json").read_text())
        assert report["film"] == film.stem
        assert report["counts"]["shots"] == len(report["shots"]) >= 3
        assert report["counts"]["frames"] >= 3
        assert (out / film.stem / "timeline.png").is_file()


def test_local_arguments_on_a_fresh_clone(tmp_path, monkeypatch):
    """Without the shared data, LOCAL_ARGUMENTS renders two synthetic films (once)."""
    from reelworks import kubeflow, media

    monkeypatch.setenv("REELWORKS_SHARED_DATA", str(tmp_path / "absent"))
    monkeypatch.setenv("REELWORKS_CACHE_DIR", str(tmp_path / "cache"))
    args = kubeflow.get_pipeline("moviegoer").local_arguments
    assert len(args["films"]) == 2
    for film in args["films"]:
        info = media.probe_video(film)
        assert info.codec == "h264" and info.duration_s > 5
    assert kubeflow.get_pipeline("moviegoer").local_arguments["films"] == args["films"]  # reused, not re-rendered
