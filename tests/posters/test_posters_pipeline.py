"""The `posters` pipeline: compiled settings and a whole local run."""
from __future__ import annotations

import yaml
import pytest


def test_compile_carries_gpu_and_s3_settings(tmp_path):
    from reelworks import kubeflow

    path = kubeflow.compile_pipeline("posters", tmp_path / "posters.yaml")
    docs = list(yaml.safe_load_all(path.read_text()))
    spec, platform = docs[0], docs[1]
    executors = spec["deploymentSpec"]["executors"]
    gpu = {name for name, e in executors.items() if e["container"].get("resources", {}).get("accelerator")}
    assert gpu == {"exec-train-classifier", "exec-train-gan"}
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for name in ("exec-prep-posters", "exec-train-classifier", "exec-evaluate-classifier", "exec-train-gan",
                 "exec-generate-posters"):
        assert k8s[name]["secretAsEnv"][0]["secretName"] == kubeflow.S3_SECRET
    # Every step runs in the image of its flavour, named by the one setting (registry and tag included).
    from reelworks import settings

    flavours = {"exec-prep-posters": "cpu", "exec-train-classifier": "tf", "exec-evaluate-classifier": "tf",
                "exec-train-gan": "tf", "exec-generate-posters": "tf"}
    assert {name: e["container"]["image"] for name, e in executors.items()} == \
        {name: settings.image(flavour) for name, flavour in flavours.items()}


@pytest.mark.slow
def test_local_run_completes(tmp_path):
    from reelworks import kubeflow

    entry = kubeflow.get_pipeline("posters")
    args = entry.local_arguments
    # The LOCAL_ARGUMENTS data (the shared posters, else the synthetic set), cut to 300 movies.
    root = kubeflow.run_local("posters", {"limit": 300, "epochs": 2, "gan_steps": 4, "n": 4}, str(tmp_path))
    evaluation = next(root.glob("posters-*/evaluate-classifier/evaluation/evaluation.json"))
    assert '"mAP"' in evaluation.read_text()
    assert list(root.glob("posters-*/generate-posters/posters/grid.png"))
    assert args["labels"].endswith(".csv")
