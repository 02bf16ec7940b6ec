"""The poster GAN resumes from its checkpoints: a run stopped part way and started again ends
where the uninterrupted run ends."""
from __future__ import annotations

import json

import numpy as np
import pytest
from cli_helpers import run_cli

from reelworks import checkpoints

# Tiny and fast: a narrow GAN, a few steps, a checkpoint every 2 steps, only the final sample grid.
GAN = dict(size=32, steps=6, batch_size=16, z_dim=16, width=8, sample_every=100, checkpoint_every=2)


class Killed(Exception):
    """The run dying right after a checkpoint, as a pre-empted pod would."""


def _weights(folder) -> list[np.ndarray]:
    import keras

    return [w for name in ("generator", "discriminator")
            for w in keras.saving.load_model(folder / f"{name}.keras", compile=False, safe_mode=True).get_weights()]


def test_stopped_gan_resumes_to_the_uninterrupted_result(synthetic_data, tmp_path, monkeypatch, caplog):
    from reelworks.posters.train_gan import train_gan

    whole = train_gan(synthetic_data, str(tmp_path / "whole"), **GAN)
    assert checkpoints.complete_steps(str(tmp_path / "whole" / "checkpoints")) == [4, 6]

    save = checkpoints.save

    def save_then_die(root, step, write, keep=2):
        save(root, step, write, keep)
        if step == 4:
            raise Killed

    out = tmp_path / "stopped"
    monkeypatch.setattr(checkpoints, "save", save_then_die)
    with pytest.raises(Killed):
        train_gan(synthetic_data, str(out), **GAN)
    monkeypatch.undo()
    assert checkpoints.complete_steps(str(out / "checkpoints")) == [2, 4] and not (out / "gan_card.json").exists()
    # The next checkpoint, cut short by the kill (no completion marker), is ignored.
    (out / "checkpoints" / "step-00000006").mkdir()
    (out / "checkpoints" / "step-00000006" / "generator.weights.h5").write_bytes(b"half written")

    with caplog.at_level("INFO", logger="reelworks.posters.train_gan"):
        resumed = train_gan(synthetic_data, str(out), **GAN)
    assert "resumed from checkpoint step-00000004 (step 4 of 6)" in caplog.text
    # Weights, Adam moments, the data position and the noise all carry over, so the resumed run
    # repeats the uninterrupted one; measured: identical to the bit on one machine and thread
    # count, the tolerance allows for float reassociation elsewhere.
    losses = json.loads((out / "losses.json").read_text())
    reference = json.loads((tmp_path / "whole" / "losses.json").read_text())
    assert losses["step"] == reference["step"] == [1, 2, 3, 4, 5, 6]
    for key in ("d_loss", "g_loss"):
        np.testing.assert_allclose(losses[key], reference[key], rtol=1e-4, err_msg=key)
    for got, expected in zip(_weights(out), _weights(tmp_path / "whole"), strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    assert resumed["final_g_loss"] == pytest.approx(whole["final_g_loss"], rel=1e-4)
    assert [p.name for p in (out / "samples").iterdir()] == ["step-000006.png"]


def test_gan_checkpoint_options_are_checked(synthetic_data, tmp_path):
    code, output = run_cli("posters", "train-gan", "--data", synthetic_data, "--output", str(tmp_path / "gan"),
                           "--checkpoint-every", "0")
    assert code == 2 and output.strip().splitlines()[-1] == "error: checkpoint_every and sample_every must be >= 1"
    assert not (tmp_path / "gan").exists()
