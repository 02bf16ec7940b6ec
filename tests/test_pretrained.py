"""Model references: Hub id, local directory, or s3:// prefix."""
from __future__ import annotations

import pytest

from reelworks import pretrained, storage
from reelworks.errors import NotFoundError, ReelworksError


def test_hub_id_passes_through():
    assert pretrained.resolve("gpt2") == "gpt2"
    assert pretrained.resolve("openai-community/gpt2") == "openai-community/gpt2"


def test_local_directory(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    assert pretrained.resolve(str(tmp_path)) == str(tmp_path)
    with pytest.raises(NotFoundError, match="no saved model"):
        pretrained.resolve(str(tmp_path / "missing"))


def test_s3_prefix_is_synced_to_the_cache(s3_bucket, tmp_path, monkeypatch):
    monkeypatch.setenv("REELWORKS_CACHE_DIR", str(tmp_path / "cache"))
    storage.write_text(f"{s3_bucket}/models/tiny/config.json", '{"n_layer": 2}')
    local = pretrained.resolve(f"{s3_bucket}/models/tiny")
    assert (tmp_path / "cache") in __import__("pathlib").Path(local).parents
    assert open(f"{local}/config.json").read() == '{"n_layer": 2}'
    with pytest.raises(NotFoundError, match="no saved model"):
        pretrained.resolve(f"{s3_bucket}/models/none")


def test_nonsense_reference():
    with pytest.raises(ReelworksError):
        pretrained.resolve("a/b/c")
