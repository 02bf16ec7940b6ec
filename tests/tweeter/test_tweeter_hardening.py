"""Attacks through the tweet queue (issue 21): a queued image naming a file that is not a
poster, and invisible characters in the text. Nothing leaves, and nothing is posted."""
from __future__ import annotations

import dataclasses
import functools
import io
import json
import os
import subprocess
import sys
import unicodedata

import pytest

from reelworks import storage
from reelworks.tweeter.compose import compose
from reelworks.tweeter.publish import PublishError, PublishOptions, publish
from reelworks.tweeter.queue import QueueItem, append_to_queue
from tweeter_fake_x import CREDENTIALS, make_items


def _image(fmt: str = "PNG", size=(64, 96), noise: bool = False) -> bytes:
    import numpy as np
    from PIL import Image

    pixels = (np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8) if noise
              else np.full((size[1], size[0], 3), 120, np.uint8))
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


def _queue(folder, image: str) -> tuple[str, str]:
    """A queue at `folder`/queue.jsonl whose one plot's image is `image`; (queue, plot id)."""
    queue = storage.join(str(folder), "queue.jsonl")
    item = make_items(1)[0]
    item.image = image
    append_to_queue(queue, [item])
    return queue, item.id


def test_dry_run_does_not_copy_the_process_environment(tmp_path):
    """The reported attack: `"image": "/proc/self/environ"` put the X secrets into the outbox."""
    queue, plot = _queue(tmp_path / "plotbot", "/proc/self/environ")
    env = {k: v for k, v in os.environ.items() if not k.startswith("X_")}
    env.update(CREDENTIALS, REELWORKS_PUSHGATEWAY_URL="")
    reelworks = os.path.join(os.path.dirname(sys.executable), "reelworks")
    command = [reelworks, "tweeter", "publish", "--queue", queue, "--dry-run"]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "'/proc/self/environ' is outside" in errors[0] and "nothing was posted" in errors[0]
    assert not list((tmp_path / "plotbot" / "outbox").glob("tweets/*"))  # no tweet, no image
    # Nothing was posted and the claim was released: the next run may post the text alone.
    proc = subprocess.run([*command, "--allow-no-image"], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "image refused" in proc.stderr, proc.stderr
    written = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    assert b"The Last Lighthouse" in written  # the tweet is in the outbox, without its "image"
    for name, secret in CREDENTIALS.items():
        assert secret.encode() not in written and secret not in proc.stdout + proc.stderr, name
    assert not list(tmp_path.rglob("*.png"))


@pytest.fixture
def outside_secret(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI\n")
    return secret


def _refused(queue, fake_x, match: str, **options) -> PublishError:
    with pytest.raises(PublishError, match=match) as info:
        publish(queue, PublishOptions(**options))
    assert info.value.exit_code == 2 and "\n" not in str(info.value)
    assert fake_x.calls("upload") == 0 and fake_x.tweets == []
    return info.value


def test_a_symlink_out_of_the_posters_folder_is_refused(fake_x, tmp_path, outside_secret):
    posters = tmp_path / "plotbot" / "posters"
    posters.mkdir(parents=True)
    (posters / "poster.png").symlink_to(outside_secret)
    queue, _ = _queue(tmp_path / "plotbot", str(posters / "poster.png"))
    _refused(queue, fake_x, r"poster.png' is outside .*plotbot/posters.*nothing was posted")
    # `..` out of the folder, and a path elsewhere: the same.
    for image in (f"{posters}/../../secret.txt", str(outside_secret)):
        queue, _ = _queue(tmp_path / f"q{len(image)}", image)
        _refused(queue, fake_x, "is outside")


@pytest.mark.parametrize("content, reason", [
    (b"AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI\n", "is not a PNG or JPEG image"),
    (_image("GIF"), "is not a PNG or JPEG image"),
    (_image("PNG", noise=True)[:2000], "is a damaged image"),
])
def test_only_real_png_or_jpeg_posters_are_uploaded(fake_x, tmp_path, content, reason):
    poster = tmp_path / "plotbot" / "posters" / "poster.png"
    storage.write_bytes(str(poster), content)
    queue, _ = _queue(tmp_path / "plotbot", str(poster))
    _refused(queue, fake_x, reason)
    # The claim was released: the plot is still the next one, and goes out once its poster is real.
    storage.write_bytes(str(poster), _image("JPEG"))
    assert publish(queue, PublishOptions()).outcome == "published"
    assert fake_x.calls("upload") == 1 and fake_x.tweets[0]["media_ids"]


@functools.lru_cache(maxsize=1)
def _big_png() -> bytes:
    """A 1400x1400 noise PNG: 5.9 MB, over X's 5 MB (the JPEG of it is ~1.7 MB)."""
    return _image("PNG", size=(1400, 1400), noise=True)


def test_a_poster_over_5_mb_goes_to_x_as_a_jpeg_that_fits(fake_x, tmp_path, caplog):
    from tweeter_fake_x import MAX_IMAGE_BYTES

    from reelworks.tweeter.x_account import Rejected, XAccount

    big = _big_png()
    assert len(big) > MAX_IMAGE_BYTES
    # X (the fake, like the real one) refuses the PNG itself...
    with pytest.raises(Rejected, match="File size exceeds 5242880 bytes"):
        XAccount.from_env().upload_image(big, "poster.png")
    poster = tmp_path / "plotbot" / "posters" / "poster.png"
    storage.write_bytes(str(poster), big)
    queue, _ = _queue(tmp_path / "plotbot", str(poster))
    with caplog.at_level("WARNING", logger="reelworks.tweeter.publish"):
        assert publish(queue, PublishOptions()).outcome == "published"
    # ...so the publisher sends a JPEG within the limit, as one: its name and type say JPEG.
    upload = fake_x.read()["uploads"][-1]
    assert upload["magic"] == "ffd8ff" and upload["content_type"] == "image/jpeg"
    assert upload["media_bytes"] <= MAX_IMAGE_BYTES and fake_x.tweets[0]["media_ids"] == [upload["id"]]
    said = [r.getMessage() for r in caplog.records if r.name == "reelworks.tweeter.publish"]
    assert len(said) == 1 and "over X's 5,242,880 byte limit: uploading it as a JPEG of quality 92" in said[0]


def test_a_poster_too_big_even_as_a_jpeg_posts_nothing_and_stays_queued(fake_x, tmp_path, monkeypatch):
    """A limit a noise picture cannot meet at any JPEG quality tried (X's 5 MB would need a 14
    megapixel one to show it: the limit is lowered instead)."""
    from reelworks.tweeter import publish as publishing

    monkeypatch.setattr(publishing, "MAX_IMAGE_BYTES", 100_000)
    poster = tmp_path / "plotbot" / "posters" / "poster.png"
    storage.write_bytes(str(poster), _image("PNG", size=(600, 600), noise=True))
    queue, _ = _queue(tmp_path / "plotbot", str(poster))
    error = _refused(queue, fake_x, r"over X's 100,000 byte limit even as a JPEG of quality 60 \([\d,]+ bytes\)"
                                    ".*nothing was posted and the plot stays queued")
    assert error.metric_reason == "image_unavailable"
    monkeypatch.setattr(publishing, "MAX_IMAGE_BYTES", 5 * 2**20)  # the claim was released: it goes out now
    assert publish(queue, PublishOptions()).outcome == "published" and fake_x.tweets[0]["media_ids"]


def test_the_image_carries_alt_text_from_the_title_and_genres(fake_x, tmp_path):
    poster = tmp_path / "plotbot" / "posters" / "poster.png"
    storage.write_bytes(str(poster), _image("PNG"))
    item = QueueItem(title="The Last\u200b Lighthouse & Co <b>", plot="A robot keeps a lighthouse burning.",
                     genres=["Sci-Fi", "Drama\u202e"], image=str(poster))
    queue = str(tmp_path / "plotbot" / "queue.jsonl")
    append_to_queue(queue, [item])
    assert publish(queue, PublishOptions()).outcome == "published"
    media_id = fake_x.tweets[0]["media_ids"][0]
    # Sent with POST /2/media/metadata before the tweet: as written (nothing escaped), invisible characters out.
    assert fake_x.read()["metadata"][media_id] == {
        "alt_text": {"text": "Movie poster for The Last Lighthouse & Co <b>, a Sci-Fi, Drama film."}}
    assert fake_x.calls("metadata") == 1


def test_alt_text_x_refuses_costs_the_text_not_the_image(fake_x, tmp_path, caplog):
    poster = tmp_path / "plotbot" / "posters" / "poster.png"
    storage.write_bytes(str(poster), _image("PNG"))
    queue, _ = _queue(tmp_path / "plotbot", str(poster))
    fake_x.script("metadata", "400")
    assert publish(queue, PublishOptions()).outcome == "published"
    assert fake_x.tweets[0]["media_ids"] and fake_x.read().get("metadata", {}) == {}
    assert "X refused the alt text of image" in caplog.text


def test_allow_no_image_posts_the_text_without_the_refused_file(fake_x, tmp_path, outside_secret):
    queue, _ = _queue(tmp_path / "plotbot", str(outside_secret))
    assert publish(queue, PublishOptions(allow_no_image=True)).outcome == "published"
    assert fake_x.calls("upload") == 0 and fake_x.tweets[0]["media_ids"] == []


def test_an_s3_image_outside_the_posters_prefix_is_refused(fake_x, s3_bucket):
    storage.write_bytes(f"{s3_bucket}/private/key.png", _image())  # a real PNG, in the wrong place
    queue, _ = _queue(f"{s3_bucket}/plotbot", f"{s3_bucket}/private/key.png")
    _refused(queue, fake_x, f"'{s3_bucket}/private/key.png' is outside {s3_bucket}/plotbot/posters")


INVISIBLE = "\u202e\u200b\u200d\u2066\ufeff\U000e0041\U000e0042\x00\x1b[31m\x7f\x85\ue000\U000f0000"


def _visible_only(text: str) -> bool:
    return all(c == "\n" or unicodedata.category(c) not in ("Cc", "Cf", "Co") for c in text)


def test_invisible_characters_never_reach_a_tweet(fake_x, tmp_path):
    """Bidi overrides, zero-width and tag characters, NUL/ESC/DEL, private use: written into the queue
    by hand (not through `plots curate`), they are still dropped before tweeting."""
    item = QueueItem(title=f"The Last{INVISIBLE} Lighthouse", plot=f"A lonely\u202erobot{INVISIBLE} keeps a "
                     "lighthouse burning.\x00\nFor ships.", genres=["Sci\u200b\U000e0041\u202e-Fi"], keywords=["ro\u200bbot"])
    texts = compose(item).texts
    assert texts == ["The Last[31m Lighthouse\n\nA lonelyrobot[31m keeps a lighthouse burning. For ships."
                     "\n\n#SciFi #Robot"]
    queue = tmp_path / "plotbot" / "queue.jsonl"
    queue.parent.mkdir()
    queue.write_text(json.dumps(dataclasses.asdict(item)) + "\n")  # JSON escapes: one line, as a person writes it
    result = publish(str(queue), PublishOptions())
    assert result.outcome == "published", result
    assert [t["text"] for t in fake_x.tweets] == texts and _visible_only(fake_x.tweets[0]["text"])


def test_line_separator_characters_inside_a_plot_do_not_split_its_queue_line(tmp_path):
    """JSON Lines ends lines at "\\n" only: U+2028/U+2029/U+0085 inside a string stay in the plot."""
    from reelworks.tweeter.queue import read_queue, set_images

    queue = str(tmp_path / "queue.jsonl")
    items = make_items(2)
    items[0] = dataclasses.replace(items[0], plot=items[0].plot + "\u2028Then\u2029it\x85ends.")
    append_to_queue(queue, items)
    read = read_queue(queue)
    assert [i.id for i in read.items] == [i.id for i in items] and not read.bad_lines
    assert set_images(queue, {items[1].id: str(tmp_path / "posters" / "p.png")}) == 1
    assert [i.plot for i in read_queue(queue).items] == [i.plot for i in items]
