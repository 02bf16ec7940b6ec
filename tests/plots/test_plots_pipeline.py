import json
import os
import subprocess
import sys

import pytest
import yaml

from reelworks import kubeflow


def test_compiled_pipeline_carries_gpu_and_secret_settings(tmp_path):
    path = kubeflow.compile_pipeline("plotbot", tmp_path / "plotbot.yaml")
    docs = list(yaml.safe_load_all(path.read_text()))
    spec, platform = docs[0], docs[1]
    executors = spec["deploymentSpec"]["executors"]
    gpu = {name for name, ex in executors.items() if ex["container"].get("resources", {}).get("accelerator")}
    assert gpu == {"exec-train", "exec-generate", "exec-posters-from-plots"}
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(k8s) == set(executors)  # every step gets the S3 secret
    assert all(e["secretAsEnv"][0]["secretName"] == "reelworks-s3" for e in k8s.values())
    assert k8s["exec-train"]["nodeSelector"] == {"labels": {"nvidia.com/gpu.present": "true"}}
    assert all(ex["container"]["image"].startswith(("ghcr.io/", os.environ.get("REELWORKS_IMAGE_REGISTRY", "ghcr")))
               for ex in executors.values())
    assert {"input", "preset", "nproc", "launcher", "queue_uri", "checkpoint_uri", "posters", "poster_model"} <= set(
        spec["root"]["inputDefinitions"]["parameters"])


@pytest.mark.slow
def test_local_run_on_s3_writes_every_output(movies_csv, s3_bucket):
    """The whole pipeline in kfp.local on a small subset, DDP on 2 processes, against S3:
    the input, the tweet queue and the pipeline root all live on the S3 test server."""
    from reelworks import storage

    input_uri = f"{s3_bucket}/data/movies.csv"
    storage.upload_file(movies_csv, input_uri)
    root, queue = f"{s3_bucket}/pipeline-root", f"{s3_bucket}/plotbot/queue.jsonl"
    # The tiny preset: the pipeline's default (SmolLM2 fine-tuning) is for the cluster's GPUs.
    params = {"input": input_uri, "preset": "tiny", "max_rows": 300, "nproc": 2, "max_steps": 30, "lstm_steps": 20,
              "block_size": 64, "batch_size": 8, "checkpoint_every": 10, "samples": 8, "queue_uri": queue}
    command = [sys.executable, "-m", "reelworks", "run", "plotbot", "--pipeline-root", root]
    for key, value in params.items():
        command += ["--param", f"{key}={value}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "REELWORKS_PROGRESS": "0"})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    keys = storage.list_keys(root)
    (run,) = {key.split("/")[0] for key in keys}
    assert run.startswith("plotbot-")
    run = f"{root}/{run}"
    steps = {key.split("/")[1] for key in keys}
    assert {"prep", "train", "train-lstm", "generate", "curate", "evaluate", "posters-from-plots"} <= steps
    assert json.loads(storage.read_text(f"{run}/train/model/training.json"))["world_size"] == 2
    assert storage.read_text(f"{run}/prep/report_html").startswith("<!doctype html>")
    evaluation = json.loads(storage.read_text(f"{run}/evaluate/evaluation/evaluation.json"))
    assert evaluation["gpt2_val_perplexity"] < evaluation["unigram_val_perplexity"]
    assert evaluation["lstm_val_perplexity"] > 0
    markdown = storage.read_text(f"{run}/evaluate/report_md")
    assert "unigram baseline" in markdown and "LSTM baseline" in markdown
    assert storage.exists(f"{run}/curate/curated/plots.json")
    assert len(storage.read_text(f"{run}/generate/samples").splitlines()) == 8
    curated = json.loads(storage.read_text(f"{run}/curate/curated/plots.json"))
    queued = storage.read_text(queue).splitlines() if storage.exists(queue) else []
    assert len(queued) == len(curated)
    # The posters step (tiny preset) gave every queued plot a poster beside the queue.
    for line in queued:
        image = json.loads(line)["image"]
        assert image.startswith(f"{s3_bucket}/plotbot/posters/") and storage.exists(image)
