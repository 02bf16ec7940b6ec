"""Attacks through the film commands' inputs (issue 21): model files, label and frame paths,
decompression bombs. Each is refused with one `error:` line and exit 2, and does nothing."""
from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
from films_helpers import run_cli

from reelworks.errors import ReelworksError


def _one_error_line(code: int, text: str) -> str:
    assert code == 2, text
    errors = [line for line in text.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in text, text
    return errors[0]


def _fitted_model():
    """One of our shot-features models, trained on random vectors of the real layout (few boosting
    rounds: the saved types are the same as with 200, the fit takes a fraction of the time)."""
    from reelworks.films.shot_features import FeatureModel, new_pipeline, scalar_count

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, scalar_count() + 1764)).astype(np.float32)
    return FeatureModel(new_pipeline(seed=0).set_params(boost__max_iter=10)).fit(x, np.arange(60) % 2), x


def _eval_model_file(marker) -> bytes:
    """A skops file whose one node calls `builtins.eval` on a string: it writes `marker` when loaded
    by a loader that trusts `builtins.*` (the loader before issue 21 did)."""
    from skops.io import dumps

    payload = dumps((f"open({str(marker)!r}, 'w').write('ran')",))
    schema = json.loads(zipfile.ZipFile(io.BytesIO(payload)).read("schema.json"))
    header = {key: schema.pop(key) for key in ("protocol", "_skops_version")}
    node = {"__class__": "eval", "__module__": "builtins", "__loader__": "ConstructorFromReduceNode",
            "content": schema, "__id__": 1, **header}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("schema.json", json.dumps(node))
    return buffer.getvalue()


def _empty_frame_folder(path):
    path.mkdir()
    (path / "manifest.jsonl").write_text("")
    return path


def test_our_model_holds_exactly_the_trusted_types_and_loads(tmp_path):
    from skops.io import dumps, get_untrusted_types

    from reelworks.films.shot_features import TRUSTED_TYPES, FeatureModel

    model, x = _fitted_model()
    # The allow-list is what a trained model needs, no more: a scikit-learn that changes it shows here.
    assert set(get_untrusted_types(data=dumps(model.pipeline))) == TRUSTED_TYPES
    model.save(str(tmp_path))
    np.testing.assert_allclose(FeatureModel.load(str(tmp_path))(x[:5]), model(x[:5]), rtol=1e-6)


def test_a_model_file_that_runs_code_is_refused(tmp_path):
    from skops.io import get_untrusted_types, loads

    marker = tmp_path / "ran"
    data = _eval_model_file(marker)
    untrusted = get_untrusted_types(data=data)
    assert untrusted == ["builtins.eval"]
    model = tmp_path / "model"
    model.mkdir()
    (model / "features_model.skops").write_bytes(data)
    (model / "shot_classifier.json").write_text(json.dumps({"model_kind": "features", "threshold": 0.5}))
    frames = _empty_frame_folder(tmp_path / "frames")

    code, text = run_cli("films", "classify", "--frames", str(frames), "--model", str(model),
                         "-o", str(tmp_path / "probs"))
    line = _one_error_line(code, text)
    assert "features_model.skops" in line and "'builtins.eval'" in line
    assert not marker.exists() and not (tmp_path / "probs").exists()
    # The attack is real: trusting what the file names (as `builtins.*` was) runs its code.
    loads(data, trusted=untrusted)
    assert marker.read_text() == "ran"


def test_a_damaged_model_file_is_one_line(tmp_path):
    from reelworks.films.shot_features import FeatureModel

    (tmp_path / "features_model.skops").write_bytes(b"PK\x03\x04 not a zip at all")
    with pytest.raises(ReelworksError, match="not a readable skops model"):
        FeatureModel.load(str(tmp_path))


@pytest.mark.parametrize("row", ["../../../etc/passwd", "/etc/passwd", "MCU/../../outside.png", "escape.png"])
def test_label_paths_stay_inside_their_folder(tmp_path, row):
    from reelworks.films.shot_classifier import read_labelled_frames

    data = tmp_path / "stills"
    (data / "MCU").mkdir(parents=True)
    outside = tmp_path / "outside.png"
    outside.write_bytes(b"not read")
    (data / "escape.png").symlink_to(outside)  # a link inside the folder pointing out of it
    (data / "MCU" / "a.png").write_bytes(b"")
    (data / "labels.csv").write_text(f"file,shot_type\nMCU/a.png,MCU\n{row},LS\n")
    with pytest.raises(ReelworksError, match="is outside .*stills: paths must stay inside their folder"):
        read_labelled_frames(str(data))
    code, text = run_cli("films", "train-shot-classifier", "--data", str(data), "-o", str(tmp_path / "model"))
    assert repr(row) in _one_error_line(code, text)
    assert not (tmp_path / "model").exists()


def test_frame_manifest_paths_stay_inside_the_folder(tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    (frames / "manifest.jsonl").write_text(json.dumps({"film": "f", "index": 0, "time_s": 0.0,
                                                       "path": "../secret.jpg"}) + "\n")
    code, text = run_cli("films", "faces", "--frames", str(frames), "-o", str(tmp_path / "faces"))
    assert "'../secret.jpg' is outside" in _one_error_line(code, text)


@pytest.fixture(scope="module")
def bomb(tmp_path_factory):
    """A 13000x13000 PNG of a few KiB: 646 MiB decoded as RGB."""
    from PIL import Image

    path = tmp_path_factory.mktemp("bomb") / "bomb.png"
    Image.new("1", (13_000, 13_000)).save(path, optimize=True)
    assert path.stat().st_size < 64 * 1024
    return path


def test_a_decompression_bomb_frame_is_refused(tmp_path, bomb):
    frames = tmp_path / "frames"
    frames.mkdir()
    (frames / "frame_000000.png").write_bytes(bomb.read_bytes())
    (frames / "manifest.jsonl").write_text(json.dumps({"film": "f", "index": 0, "time_s": 0.0,
                                                       "path": "frame_000000.png"}) + "\n")
    code, text = run_cli("films", "faces", "--frames", str(frames), "-o", str(tmp_path / "faces"))
    line = _one_error_line(code, text)
    assert "frame_000000.png is 13000x13000 pixels, over the 40,000,000 pixel limit" in line


def test_a_decompression_bomb_among_labelled_stills_is_refused_before_training(tmp_path, bomb):
    """The CNN decodes stills with TensorFlow (no pixel cap): every still's header is checked first."""
    data = tmp_path / "stills"
    (data / "4-MCU").mkdir(parents=True)
    (data / "4-MCU" / "vlcsnap-2018-03-24-05h39m56s384.png").write_bytes(bomb.read_bytes())
    code, text = run_cli("films", "train-shot-classifier", "--data", str(data), "-o", str(tmp_path / "model"),
                         "--model-kind", "cnn")
    assert "13000x13000 pixels, over the 40,000,000 pixel limit" in _one_error_line(code, text)
    assert not (tmp_path / "model").exists()
