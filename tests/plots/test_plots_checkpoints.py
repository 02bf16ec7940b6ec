import json

import numpy as np
import pytest

from reelworks import checkpoints, storage
from reelworks.errors import ReelworksError


def _write(payload: str):
    def write(folder):
        (folder / "weights.bin").write_text(payload)
        (folder / "state.json").write_text(json.dumps({"payload": payload}))
    return write


def _read(folder, step):
    return (folder / "weights.bin").read_text()


@pytest.fixture(params=["local", "s3"])
def root(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "ckpt")
    return request.getfixturevalue("s3_bucket") + "/run/ckpt"


def test_newest_complete_checkpoint_wins_and_old_ones_are_pruned(root):
    assert checkpoints.load_newest(root, _read) is None
    for step in (10, 20, 30):
        checkpoints.save(root, step, _write(f"w{step}"), keep=2)
    assert checkpoints.complete_steps(root) == [20, 30]
    assert checkpoints.load_newest(root, _read) == (30, "w30")
    # A folder without its marker (a job killed while writing) is ignored.
    storage.write_text(storage.join(root, "step-00000040", "weights.bin"), "half")
    assert checkpoints.load_newest(root, _read) == (30, "w30")


def test_corrupt_newest_falls_back_to_previous(root):
    checkpoints.save(root, 10, _write("w10"))
    checkpoints.save(root, 20, _write("w20"))
    storage.write_text(storage.join(root, "step-00000020", "weights.bin"), "garbage")  # checksum no longer matches
    assert checkpoints.load_newest(root, _read) == (10, "w10")


def test_every_checkpoint_unreadable_is_an_error(root):
    checkpoints.save(root, 10, _write("w10"))
    storage.delete(storage.join(root, "step-00000010", "weights.bin"))
    with pytest.raises(ReelworksError, match="no readable checkpoint .*step-00000010"):
        checkpoints.load_newest(root, _read)


def test_a_loader_failure_also_falls_back(tmp_path):
    root = str(tmp_path / "ckpt")
    checkpoints.save(root, 1, _write("ok"))
    checkpoints.save(root, 2, _write("bad"))

    def load(folder, step):
        if (folder / "weights.bin").read_text() == "bad":
            raise RuntimeError("size mismatch for wte.weight")
        return step

    assert checkpoints.load_newest(root, load) == (1, 1)


def test_epoch_order_resumes_from_a_position():
    stream = checkpoints.EpochOrder(7, seed=3).indices(0, 30)
    epochs = [sorted(stream[e * 7:(e + 1) * 7]) for e in range(4)]
    assert epochs == [list(range(7))] * 4  # every epoch sees every item once
    assert not np.array_equal(stream[:7], stream[7:14])  # and in a new order
    # A run that restarts at position 12 (mid-epoch) gets the rest of the same stream.
    assert np.array_equal(checkpoints.EpochOrder(7, seed=3).indices(12, 18), stream[12:])
