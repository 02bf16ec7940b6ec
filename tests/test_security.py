"""Issue 21 across modules: one pixel cap for every image loader (decompression bombs), and
paths read from data files kept inside their folder (`storage.inside`)."""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest

from reelworks import media, storage
from reelworks.errors import ReelworksError


def _png(size=(32, 48), mode="RGB") -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new(mode, size).save(buffer, format="PNG")
    return buffer.getvalue()


def _claims_size(png: bytes, width: int, height: int) -> bytes:
    """`png` with its header (IHDR) claiming another size, checksum fixed: how a bomb starts."""
    assert png[12:16] == b"IHDR"
    ihdr = struct.pack(">II", width, height) + png[24:29]
    return png[:8] + struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr)) + png[33:]


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """A real, decodable 13000x13000 PNG of a few KiB: 646 MiB once decoded as RGB (the reported one)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("1", (13_000, 13_000)).save(buffer, format="PNG", optimize=True)
    assert len(buffer.getvalue()) < 64 * 1024
    return buffer.getvalue()


def test_open_image_refuses_past_the_pixel_cap_before_decoding(bomb):
    with pytest.raises(media.ImageRefused) as info:
        media.open_image(bomb, "bomb.png")
    assert info.value.reason == "too_large"
    assert str(info.value) == "bomb.png is 13000x13000 pixels, over the 40,000,000 pixel limit for images"
    # Past Pillow's own limit (2 x 89 M pixels) Pillow raises first: still the same one line.
    with pytest.raises(media.ImageRefused, match="over the 40,000,000 pixel limit") as info:
        media.open_image(_claims_size(_png(), 20_000, 20_000), "huge.png")
    assert info.value.reason == "too_large"
    # At the cap itself an image is fine (an 8K frame is 33 M pixels).
    assert media.open_image(_png((40_000_000 // 8000, 8000), mode="1")).size == (5000, 8000)


@pytest.mark.parametrize("data, reason", [(b"", "empty"), (b"<html>", "not_image"),
                                          (_claims_size(_png(), 64, 64), "corrupt")])
def test_open_image_names_what_is_wrong_in_one_line(data, reason):
    with pytest.raises(media.ImageRefused) as info:
        media.open_image(data, "x.png")
    assert info.value.reason == reason and str(info.value).startswith("x.png is ") and "\n" not in str(info.value)


def _loaders(tmp_path, data: bytes):
    """Every image loader in the package, each given `data` its own way."""
    from reelworks.films.frames import load_image
    from reelworks.musicvideo.render import _decode_png
    from reelworks.posters.from_plots import _contact_sheet
    from reelworks.posters.images import PosterRejected, decode_poster
    from reelworks.t2v.animate import open_image as animate_image
    from reelworks.t2v.evaluate import _gif_info
    from reelworks.t2v.export import load_frames

    path = tmp_path / "frame.png"
    path.write_bytes(data)

    def poster():
        try:
            decode_poster(data, (55, 80))
        except PosterRejected as exc:  # counted by reason in `posters prep`, not raised
            raise ReelworksError(str(exc)) from None

    return {"films frames": lambda: load_image(str(path)), "musicvideo keyframes": lambda: _decode_png(data),
            "t2v animate": lambda: animate_image(data, "frame.png"), "posters decode": poster,
            "posters gallery": lambda: _contact_sheet([{"image": str(path), "genres": []}], False),
            "t2v export": lambda: load_frames(str(tmp_path), {"frame_files": ["frame.png"]}),
            "t2v gif info": lambda: _gif_info(str(path), 8.0)}


def test_every_image_loader_shares_the_pixel_cap(tmp_path, bomb):
    for name, load in _loaders(tmp_path, bomb).items():
        with pytest.raises(ReelworksError, match="13000x13000 pixels, over the 40,000,000 pixel limit"):
            load()
    for name, load in _loaders(tmp_path, _png()).items():
        load()  # a normal image still loads everywhere


def test_inside_keeps_relative_paths_in_their_folder(tmp_path):
    root = tmp_path / "data"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "ok.png").write_bytes(b"")
    (root / "out.png").symlink_to(tmp_path / "elsewhere.png")
    (root / "sub-link").symlink_to(root / "sub")  # a link that stays inside is fine
    assert storage.inside(str(root), "sub/ok.png") == f"{root}/sub/ok.png"
    assert storage.inside(str(root), "sub-link/ok.png") == f"{root}/sub-link/ok.png"
    for bad in ("../x.png", "/etc/passwd", "sub/../../x.png", "out.png", "", "."):
        with pytest.raises(ReelworksError, match=r"is outside .*data: paths must stay inside their folder"):
            storage.inside(str(root), bad, "frame")


def test_is_inside_on_s3_compares_bucket_and_prefix():
    assert storage.is_inside("s3://b/plotbot/posters/x.png", "s3://b/plotbot/posters")
    assert storage.is_inside("s3://b/plotbot/posters/x.png", "s3://b/plotbot/posters/")
    assert not storage.is_inside("s3://b/plotbot/posters-old/x.png", "s3://b/plotbot/posters")
    assert not storage.is_inside("s3://other/plotbot/posters/x.png", "s3://b/plotbot/posters")
    assert not storage.is_inside("s3://b/plotbot/posters", "s3://b/plotbot/posters")
    assert not storage.is_inside("/plotbot/posters/x.png", "s3://b/plotbot/posters")
    with pytest.raises(ReelworksError, match="'..' would escape"):
        storage.is_inside("s3://b/plotbot/posters/../secrets/x.png", "s3://b/plotbot/posters")
    assert np.all([storage.is_inside(f"s3://b/{k}", "s3://b") for k in ("a", "a/b")])


@pytest.mark.parametrize("poster", ["../../secret.jpg", "/etc/passwd", "link.jpg"])
def test_posters_prep_reads_poster_files_only_from_its_folder(tmp_path, poster):
    from cli_helpers import run_cli

    images = tmp_path / "data" / "images"
    images.mkdir(parents=True)
    (images / "1.jpg").write_bytes(_png())
    (tmp_path / "secret.jpg").write_bytes(_png())  # a real image: only the path gives it away
    (images / "link.jpg").symlink_to(tmp_path / "secret.jpg")
    labels = tmp_path / "data" / "posters.csv"
    labels.write_text(f"imdbId,Genre,Poster\n1,Drama,1.jpg\n2,Comedy,{poster}\n")
    code, text = run_cli("posters", "prep", "--labels", str(labels), "--output", str(tmp_path / "out"))
    errors = [line for line in text.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "Traceback" not in text, text
    assert f"poster file {poster!r} is outside {images}" in errors[0]
    assert not (tmp_path / "out").exists()


def test_posters_dataset_shards_stay_inside_the_dataset(tmp_path):
    from reelworks.posters.prep import local_split_files

    (tmp_path / "data" / "tfrecords").mkdir(parents=True)
    manifest = {"splits": {"train": {"files": ["tfrecords/train-0.tfrecord", "../../other/train.tfrecord"]}}}
    with pytest.raises(ReelworksError, match="train shard in dataset.json '../../other/train.tfrecord' is outside"):
        local_split_files(str(tmp_path / "data"), manifest, "train")
    manifest["splits"]["train"]["files"].pop()
    assert local_split_files(str(tmp_path / "data"), manifest, "train") == [f"{tmp_path}/data/tfrecords/train-0.tfrecord"]
