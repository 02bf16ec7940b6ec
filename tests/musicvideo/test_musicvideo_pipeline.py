"""The `musicvideo` pipeline: its shape when compiled, and the no-parameter local run end to end."""
from __future__ import annotations

import json

import pytest
import yaml


def test_pipeline_parameters_gpu_steps_and_fan_out(tmp_path):
    from reelworks import kubeflow

    entry = kubeflow.get_pipeline("musicvideo")
    assert {"audio", "lyrics", "fps", "preset", "model", "llm_base_url", "llm_model", "height", "width",
            "interpolate_workers"} <= set(entry.input_types())
    path = kubeflow.compile_pipeline("musicvideo", tmp_path / "musicvideo.yaml")
    docs = list(yaml.safe_load_all(path.read_text()))
    spec = docs[0]
    executors = spec["deploymentSpec"]["executors"]
    gpu = {name for name, e in executors.items() if e["container"].get("resources", {}).get("accelerator")}
    assert gpu == {"exec-render-keyframes", "exec-interpolate-frames"}
    for name in gpu:
        assert executors[name]["container"]["resources"]["accelerator"]["resourceCount"] == "1"
    text = path.read_text()
    assert "parameterIterator" in text  # the interpolate chunks fan out over shards (ParallelFor)
    tasks = spec["root"]["dag"]["tasks"]
    assert "render-video" in tasks and "musicvideo-report" in tasks


@pytest.mark.slow
def test_run_local_with_no_parameters_makes_the_demo_video(tmp_path, no_llm):
    from reelworks import media
    from reelworks.cli import main

    root = tmp_path / "root"
    main(["run", "musicvideo", "--local", "--pipeline-root", str(root)])
    videos = list(root.rglob("video.mp4"))
    assert len(videos) == 1
    rendered = json.loads((videos[0].parent / "render.json").read_text())
    info = media.probe(videos[0])
    timeline = json.loads(next(root.rglob("timeline.json")).read_text())
    assert info.video.frames == timeline["frames"] == rendered["frames"]
    assert abs(info.video.duration_s - info.audio.duration_s) <= 1 / timeline["fps"]
    assert (videos[0].parent / "preview.gif").stat().st_size > 1000
    plan = json.loads(next(root.rglob("plan.json")).read_text())
    assert plan["source"] == "template" and len(plan["scenes"]) == 6
    # The whole song: a scene per line, and the intro and outro around them.
    assert [kf["kind"] for kf in timeline["keyframes"]] == ["intro"] + ["line"] * 6 + ["outro"]
    # The run's page is a real .html file a browser opens (the KFP UI's copy is the extension-less `html`).
    (page,) = root.rglob("musicvideo-report/summary/report.html")
    assert page.read_text().startswith("<!doctype html>") and "data:image/png" in page.read_text()
