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
    # render-video-2: the render of the upscale > 1 branch (tests/musicvideo/test_musicvideo_output.py).
    assert gpu == {"exec-render-keyframes", "exec-interpolate-frames", "exec-render-video-2"}
    for name in gpu:
        assert executors[name]["container"]["resources"]["accelerator"]["resourceCount"] == "1"
    text = path.read_text()
    assert "parameterIterator" in text  # the interpolate chunks fan out over shards (ParallelFor)
    branches = [c["dag"]["tasks"] for name, c in spec["components"].items() if name.startswith("comp-condition-")]
    assert {"render-video", "musicvideo-report"} in [set(tasks) for tasks in branches]


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


def test_aspect_and_reroll_reach_the_keyframes_and_the_walk_follows_the_rerolled_timeline(tmp_path):
    """`reroll` goes to the keyframes step, whose timeline (with the re-rolls) the interpolate
    tasks walk; `aspect` to both; bad values are refused before the first step."""
    from reelworks import kubeflow
    from reelworks.errors import ReelworksError

    entry = kubeflow.get_pipeline("musicvideo")
    assert {"aspect", "reroll"} <= set(entry.input_types())
    kubeflow.check_inputs(entry, {"aspect": "16:9", "reroll": "3;5:seed=9:prompt=a red door"}, complete=False)
    for bad, message in [({"aspect": "4:3"}, "parameter aspect='4:3': expected one of 1:1, 16:9, 9:16"),
                         ({"reroll": "3:sed=1"}, "parameter reroll='3:sed=1': re-roll '3:sed=1' is not N")]:
        with pytest.raises(ReelworksError, match=message):
            kubeflow.check_inputs(entry, bad, complete=False)
    spec = list(yaml.safe_load_all(kubeflow.compile_pipeline("musicvideo", tmp_path / "mv.yaml").read_text()))[0]
    keyframes = spec["root"]["dag"]["tasks"]["render-keyframes"]["inputs"]["parameters"]
    assert keyframes["reroll"] == {"componentInputParameter": "reroll"}
    assert keyframes["aspect"] == {"componentInputParameter": "aspect"}
    (loop,) = [task for name, task in spec["root"]["dag"]["tasks"].items() if name.startswith("for-loop")]
    walked = [a["taskOutputArtifact"] for a in loop["inputs"]["artifacts"].values()]
    assert {"outputArtifactKey": "keyframes", "producerTask": "render-keyframes"} in walked
