"""Shared plot-bot fixtures: a synthetic movies CSV, its prep output, a tiny trained model."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from plots_helpers import TINY  # noqa: E402



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
