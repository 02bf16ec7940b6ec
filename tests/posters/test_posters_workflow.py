"""The posters steps end to end on the synthetic set, the CLI, the GAN, and the TFJob."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from reelworks.errors import ReelworksError


def test_prep_manifest_and_splits(synthetic_data):
    import pandas as pd

    from reelworks.posters.prep import load_manifest, split_of

    manifest = load_manifest(synthetic_data)
    assert manifest["image"] == {"height": 54, "width": 36, "channels": 3}
    assert sum(s["count"] for s in manifest["splits"].values()) == manifest["kept"] == 150
    table = pd.read_csv(f"{synthetic_data}/posters.csv")
    assert (table["split"] == [split_of(i) for i in table["imdbId"]]).all()
    assert set(table.loc[table["imdbId"] % 7 == 0, "split"]) == {"test"}
    assert len(manifest["splits"]["train"]["files"]) == 2


def test_train_evaluate_predict(synthetic_data, synthetic_model, tmp_path, capsys):
    from reelworks.cli import main
    from reelworks.posters.evaluate import evaluate, listing_line
    from reelworks.posters.predict import predict

    card = json.loads(open(f"{synthetic_model}/model_card.json").read())
    assert card["arch"] == "posters_cnn" and card["task"]["kind"] == "multilabel"
    assert card["class_weights"] and all(w >= 1 for w in card["class_weights"])
    out = evaluate(synthetic_data, synthetic_model, str(tmp_path / "eval"), gallery=8)
    summary = out["summary"]
    # Shapes and colours per genre are easy: the model must beat label frequencies by far. Seeds 0-4
    # of this fixture (`python bench/seed_spread.py synthetic`; seed 0 twice: same to the bit):
    # mAP 0.810/0.881/0.862/0.894/0.763 and micro-F1 0.759/0.748/0.781/0.804/0.646 (the default,
    # calibrated thresholds) against the baseline's 0.333 and 0.500.
    model, baseline = summary["model"], summary["frequency_baseline"]
    assert model["mAP"] > baseline["mAP"] + 0.3 and model["micro_f1"] > baseline["micro_f1"] + 0.1, summary
    assert out["beats_baseline"] == {"mAP": True, "micro_f1": True}
    listing = (tmp_path / "eval" / "listing.txt").read_text().splitlines()
    assert len(listing) == out["count"] and "%" in listing[0]
    assert listing_line("The Matrix (1999)", np.array([0.91, 0.25, 0.13]), np.array([1, 0, 0]),
                        ["Action", "Drama", "Adventure"]).split(None, 3)[-1] == \
        "['Action: 91%', 'Drama[!]: 25%', 'Adventure[!]: 13%']"
    for name in ("gallery.png", "gradcam.png", "curves.png", "report.md"):
        assert (tmp_path / "eval" / "report" / name).stat().st_size > 500
    report = (tmp_path / "eval" / "report" / "report.md").read_text()
    assert "label-frequency baseline" in report and "original_accuracy" in report

    images = sorted((tmp_path.parent).glob("synthetic*/images/*.jpg"))[:3]
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0garbage")
    results = predict(synthetic_model, [str(p) for p in images] + [str(tmp_path / "broken.jpg"),
                                                                   str(tmp_path / "nope.jpg")],
                      output=str(tmp_path / "pred.jsonl"), batch_size=2)
    assert [("genres" in r) for r in results] == [True, True, True, False, False]
    assert results[3]["error"] == "corrupt" and results[4]["error"] == "missing"
    assert len((tmp_path / "pred.jsonl").read_text().splitlines()) == 5
    assert set(results[0]["genres"]) == set(card["task"]["classes"])
    with pytest.raises(ReelworksError, match="none of the 1 image"):
        predict(synthetic_model, [str(tmp_path / "nope.jpg")])

    # The CLI: a listing for a folder, and one clear line (exit 2) for bad input.
    main(["posters", "predict", "--model", synthetic_model, "--image", str(images[0].parent), "--top", "2"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 150 and lines[0].count("%") == 2
    with pytest.raises(SystemExit) as exit_:
        main(["posters", "evaluate", "--data", str(tmp_path), "--model", synthetic_model, "--output", str(tmp_path / "x")])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip().startswith("error: ")


def test_empty_splits(synthetic_posters, tmp_path):
    """A dataset whose validation and test splits are empty still trains; evaluating it says why not."""
    import pandas as pd

    from reelworks.posters.evaluate import evaluate
    from reelworks.posters.prep import prep
    from reelworks.posters.train import train

    table = pd.read_csv(synthetic_posters)
    only_train = table[table["imdbId"] % 7 >= 2].head(40)
    labels = tmp_path / "train_only.csv"
    only_train.to_csv(labels, index=False)
    shutil.copytree(f"{synthetic_posters.rsplit('/', 1)[0]}/images", tmp_path / "images")
    manifest = prep(str(labels), str(tmp_path / "data"), ratio=10)
    assert manifest["splits"]["validation"]["count"] == manifest["splits"]["test"]["count"] == 0
    card, _ = train(str(tmp_path / "data"), str(tmp_path / "model"), epochs=1, dense_units=8)
    assert card.data["validation_split"] == "train"
    with pytest.raises(ReelworksError, match="test split .* is empty"):
        evaluate(str(tmp_path / "data"), str(tmp_path / "model"), str(tmp_path / "eval"))


def test_gan_trains_and_generates(synthetic_data, synthetic_model, tmp_path):
    from reelworks.posters import gan
    from reelworks.posters.generate import generate
    from reelworks.posters.train_gan import train_gan

    card = train_gan(synthetic_data, str(tmp_path / "gan"), size=32, steps=4, batch_size=16, sample_every=2, width=16)
    assert sorted(p.name for p in (tmp_path / "gan" / "samples").iterdir()) == ["step-000002.png", "step-000004.png"]
    assert len(json.loads((tmp_path / "gan" / "losses.json").read_text())["g_loss"]) == 4
    assert card["decades_seen"] and set(card["decades_seen"]) <= set(gan.DECADES)
    result = generate(str(tmp_path / "gan"), str(tmp_path / "gen"), genres=["Sci-Fi"], decade=1980, n=5,
                      classifier=synthetic_model)
    agreement = result["agreement"]["Sci-Fi"]
    assert 0 <= agreement["agree_rate"] <= 1 and 0 < agreement["real_prevalence"] < 1
    assert len(list((tmp_path / "gen" / "posters").iterdir())) == 5
    assert (tmp_path / "gen" / "grid.png").read_bytes().startswith(b"\x89PNG")
    with pytest.raises(ReelworksError, match="unknown genre"):
        generate(str(tmp_path / "gan"), str(tmp_path / "gen2"), genres=["Western"])
    assert gan.decade_index(1987) == gan.DECADES.index(1980) and gan.decade_index(None) == len(gan.DECADES)
    assert gan.build_generator(64, 3, z_dim=8, width=8).output_shape == (None, 64, 64, 3)


def test_tfjob_for_multi_worker_training():
    from reelworks import training_operator
    from reelworks.posters.train import tfjob

    job = training_operator.to_dict(tfjob("s3://b/data", "s3://b/model", workers=3, gpus_per_worker=2,
                                          epochs=5, augment="flip", balance=False, weights=None))
    assert job["kind"] == "TFJob"
    worker = job["spec"]["tfReplicaSpecs"]["Worker"]
    assert worker["replicas"] == 3
    container = worker["template"]["spec"]["containers"][0]
    assert container["command"][:5] == ["python", "-m", "reelworks", "posters", "train"]
    assert "--no-balance" in container["command"] and "--weights" not in container["command"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] in (2, "2")
    with pytest.raises(ReelworksError, match="not an s3:// URI"):
        tfjob("/local/data", "s3://b/model", workers=2)
