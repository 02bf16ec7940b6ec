"""Seed spread of the learned figures the tests assert: how far apart seeds land, and whether
one seed trained twice lands on the same figures (it must: the tests run deterministically).

    nice python bench/seed_spread.py posters   [--seeds 0,0,1,2,3,4] [--csv ../shared/data/posters/posters_2000.csv]
    nice python bench/seed_spread.py synthetic [--seeds 0,0,1,2,3,4]
    nice python bench/seed_spread.py pretrained [--seeds 0,0,1,2] [--csv ../shared/data/posters/posters_4000.csv]
    nice python bench/seed_spread.py plots     [--seeds 0,0,1,2]

`posters`: the configuration of tests/posters/test_posters_acceptance.py (prep at ratio 20
once, then train 5 epochs, dense 128, calibrated thresholds, and evaluate, per seed). `synthetic`: the
`synthetic_model` fixture of tests/posters/conftest.py. `pretrained`: the ImageNet EfficientNet-Lite
classifier of test_posters_acceptance.py (prep at ratio 70, `posters train` defaults). `plots`: the TINY GPT-2 and LSTM of
tests/plots. One JSON line per seed; the tests' comments hold what this printed.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from reelworks.seeding import set_deterministic_env

set_deterministic_env()  # what tests/conftest.py sets: the same figures as the tests get
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("REELWORKS_PROGRESS", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent


def posters(root: str, seeds: list[int], csv: str, kind: str) -> None:
    from reelworks.posters.evaluate import evaluate
    from reelworks.posters.prep import prep
    from reelworks.posters.train import train

    if kind == "synthetic":
        from reelworks.posters.synthetic import make_posters

        prep(make_posters(f"{root}/synthetic", n=150, seed=1), f"{root}/data", ratio=20, shards=2)
        config = dict(arch="posters_cnn", epochs=6, dense_units=64, batch_size=16, augment="none")
    elif kind == "pretrained":
        prep(csv, f"{root}/data", ratio=70)
        config = {}  # the defaults: EfficientNet-Lite0 features, frozen
    else:
        prep(csv, f"{root}/data", ratio=20)
        config = dict(arch="posters_cnn", epochs=5, dense_units=128, balance=True, thresholds="calibrated")
    for i, seed in enumerate(seeds):
        train(f"{root}/data", f"{root}/model{i}", seed=seed, resume=False, **config)
        out = evaluate(f"{root}/data", f"{root}/model{i}", f"{root}/eval{i}")
        model, base = out["summary"]["model"], out["summary"]["frequency_baseline"]
        print(json.dumps({"seed": seed, "mAP": round(model["mAP"], 4), "micro_f1": round(model["micro_f1"], 4),
                          "baseline_mAP": round(base["mAP"], 4), "baseline_micro_f1": round(base["micro_f1"], 4)}),
              flush=True)


def plots(root: str, seeds: list[int]) -> None:
    sys.path.insert(0, str(REPO / "tests" / "plots"))
    from plots_helpers import TINY

    from reelworks.plots.prep import prep
    from reelworks.plots.sample import sample_movies_csv
    from reelworks.plots.train import train

    prep(sample_movies_csv(f"{root}/movies.csv", n=400), f"{root}/data")
    for i, seed in enumerate(seeds):
        gpt2 = train(f"{root}/data", f"{root}/gpt2-{i}", seed=seed, **TINY)
        lstm = train(f"{root}/data", f"{root}/lstm-{i}", arch="lstm", tokenizer=f"{root}/gpt2-{i}", hidden=64,
                     seed=seed, **{**TINY, "learning_rate": 1e-2})
        print(json.dumps({"seed": seed, "gpt2": round(gpt2["val_perplexity"], 2),
                          "lstm": round(lstm["val_perplexity"], 2), "unigram": round(gpt2["unigram_perplexity"], 2)}),
              flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["posters", "synthetic", "pretrained", "plots"])
    parser.add_argument("--seeds", default="0,0,1,2,3,4", help="comma-separated; a repeat checks determinism")
    parser.add_argument("--csv", default=None, help="default: posters_4000.csv for pretrained, else posters_2000.csv")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    with tempfile.TemporaryDirectory(prefix="seed-spread-") as root:
        if args.what == "plots":
            plots(root, seeds)
        else:
            csv = args.csv or str(REPO.parent / "shared" / "data" / "posters" /
                                  ("posters_4000.csv" if args.what == "pretrained" else "posters_2000.csv"))
            posters(root, seeds, csv, kind=args.what)


if __name__ == "__main__":
    main()
