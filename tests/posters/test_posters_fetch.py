"""Fetching and verifying posters against a real HTTP server on 127.0.0.1."""
from __future__ import annotations

import json

import numpy as np
import pytest

from posters_helpers import bomb_png, jpeg
from reelworks.errors import ReelworksError
from reelworks.posters import fetch
from reelworks.posters.images import PosterRejected, decode_poster, size_for_ratio


def test_download_success_404_timeout_and_retry(poster_server):
    assert fetch.download(f"{poster_server.url}/ok/a.jpg", timeout=2) == jpeg()
    with pytest.raises(fetch.FetchError) as err:
        fetch.download(f"{poster_server.url}/missing/a.jpg", timeout=2, retries=2, backoff=0.01)
    assert err.value.reason == "http_404"
    assert poster_server.hits["/missing/a.jpg"] == 1  # a 404 is final: no retry
    poster_server.slow_seconds = 1.5
    with pytest.raises(fetch.FetchError) as err:
        fetch.download(f"{poster_server.url}/slow/a.jpg", timeout=0.3, retries=1, backoff=0.01)
    assert err.value.reason == "timeout"
    assert poster_server.hits["/slow/a.jpg"] == 2  # timeouts are retried
    # A 500 is retried and the second answer is used.
    assert fetch.download(f"{poster_server.url}/flaky/a.jpg", timeout=2, retries=2, backoff=0.01) == jpeg((30, 200, 30))


def test_decode_rejects_bad_images_and_bombs():
    size = size_for_ratio(30)
    assert size == (55, 80)
    pixels = decode_poster(jpeg(size=(182, 268)), size)
    assert pixels.shape == (80, 55, 3) and pixels.dtype == np.uint8
    assert decode_poster(jpeg(), size, channels=1).shape == (80, 55, 1)
    for data, reason in [(b"", "empty"), (b"<html>nope</html>", "not_image"),
                         (jpeg()[:200], "corrupt"), (bomb_png(), "too_large")]:
        with pytest.raises(PosterRejected) as err:
            decode_poster(data, size)
        assert err.value.reason == reason


def _movie_genre_csv(path, server_url):
    """The MovieGenre.csv shape, ISO-8859-1, with URL posters of every kind."""
    rows = [(7, "Amélie (2001)", "Comedy|Romance", "ok/7.jpg"), (8, "Alien (1979)", "Horror|Sci-Fi", "ok/8.jpg"),
            (9, "Heat (1995)", "Action|Crime", "missing/9.jpg"), (10, "Slow (1990)", "Drama", "slow/10.jpg"),
            (11, "Broken (1985)", "Drama", "corrupt/11.jpg"), (12, "Page (1999)", "Comedy", "html/12.jpg"),
            (13, "Flaky (2004)", "Action", "flaky/13.jpg"), (14, "Bomb (2010)", "Horror", "bomb/14.jpg"),
            (15, "Matrix (1999)", "Action|Sci-Fi", "ok/15.jpg"), (16, "Up (2009)", "Animation|Comedy", "ok/16.jpg"),
            (21, "Old (1920)", "Drama", "ok/21.jpg")]
    lines = ["imdbId,Imdb Link,Title,IMDB Score,Genre,Poster"]
    lines += [f'{i},http://www.imdb.com/title/tt{i:07d},{t},7.0,{g},"{server_url}/{p}"' for i, t, g, p in rows]
    path.write_bytes(("\n".join(lines) + "\n").encode("ISO-8859-1"))
    return str(path)


def test_prep_from_urls_counts_failures_and_resumes(poster_server, tmp_path):
    from reelworks.posters.prep import prep

    poster_server.slow_seconds = 1.5
    labels = _movie_genre_csv(tmp_path / "MovieGenre.csv", poster_server.url)
    cache = str(tmp_path / "fetched")
    manifest = prep(labels, str(tmp_path / "data"), images=cache, ratio=20, timeout=0.4, retries=1, workers=4)
    # 6 good posters (ok x5 incl. 1920, flaky after a retry); each failure counted by its reason.
    assert manifest["kept"] == 6
    assert manifest["rejected"] == {"http_404": 1, "timeout": 1, "corrupt": 1, "not_image": 1, "too_large": 1}
    assert manifest["fetched"] == 8  # 6 good + the truncated JPEG and the bomb (images, rejected when decoded)
    assert manifest["years"] == [1920, 2009]
    assert {s: v["count"] for s, v in manifest["splits"].items()} == {"train": 2, "validation": 2, "test": 2}  # 7,21 | 8,15 | 13,16
    table = (tmp_path / "data" / "posters.csv").read_text(encoding="utf-8")
    assert "Amélie" in table  # ISO-8859-1 read correctly

    # Resume: what was fetched is not fetched again; failures are retried.
    hits_before = dict(poster_server.hits)
    again = prep(labels, str(tmp_path / "data2"), images=cache, ratio=20, timeout=0.4, retries=0, workers=4)
    assert again["kept"] == 6 and again["fetched"] == 0 and again["reused"] == 8
    assert poster_server.hits["/ok/7.jpg"] == hits_before["/ok/7.jpg"] == 1
    assert poster_server.hits["/missing/9.jpg"] == hits_before["/missing/9.jpg"] + 1

    # Year filter and an unknown genre in a custom list: reported, not fatal.
    filtered = prep(labels, str(tmp_path / "data3"), images=cache, ratio=20, min_year=1990, max_year=2009,
                    genres="Action,Comedy,Western", retries=0, timeout=0.4)
    assert filtered["classes"] == ["Action", "Comedy"] and filtered["unknown_genres"] == ["Western"]
    assert filtered["skipped_rows"]["outside_years"] == 4  # 1920, 1979, 1985, 2010
    manifest_file = json.loads((tmp_path / "data3" / "dataset.json").read_text())
    assert manifest_file["kept"] == filtered["kept"] == 4  # Amélie, Matrix, Up, Flaky


def test_prep_fails_only_when_nothing_is_usable(poster_server, tmp_path):
    from reelworks.posters.prep import prep

    labels = tmp_path / "bad.csv"
    labels.write_text("imdbId,Title,Genre,Poster\n"
                      f"1,A (2000),Drama,{poster_server.url}/missing/1.jpg\n"
                      f"2,B (2000),Comedy,{poster_server.url}/corrupt/2.jpg\n")
    with pytest.raises(ReelworksError, match="no usable poster among 2"):
        prep(str(labels), str(tmp_path / "out"), images=str(tmp_path / "cache"), retries=0)
    assert not (tmp_path / "out").exists()  # nothing half-written
    with pytest.raises(ReelworksError, match="fewer than 2 genres"):
        prep(str(labels), str(tmp_path / "out"), genres="Western,Musical")
