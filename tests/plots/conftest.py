"""Shared plot-bot fixtures: a synthetic movies CSV, its prep output, a tiny trained model."""
from __future__ import annotations

import pytest

# Small and fast: a few hundred movies, short blocks, a handful of steps.
TINY = dict(max_steps=24, checkpoint_every=8, log_every=4, batch_size=8, block_size=64, warmup_steps=4,
            vocab_size=600, threads=1)


@pytest.fixture(scope="session")
def movies_csv(tmp_path_factory) -> str:
    from reelworks.plots.sample import sample_movies_csv

    return sample_movies_csv(str(tmp_path_factory.mktemp("movies") / "movies.csv"), n=400)


@pytest.fixture(scope="session")
def prepped(movies_csv, tmp_path_factory) -> str:
    from reelworks.plots.prep import prep

    out = str(tmp_path_factory.mktemp("prep") / "data")
    prep(movies_csv, out)
    return out


@pytest.fixture(scope="session")
def tiny_model(prepped, tmp_path_factory) -> str:
    from reelworks.plots.train import train

    out = str(tmp_path_factory.mktemp("model") / "gpt2")
    train(prepped, out, **TINY)
    return out
