"""Invisible characters never reach the tweet queue (issue 21): `plots curate` drops them
through the same function the tweeter uses again before tweeting."""
from __future__ import annotations

import json
import unicodedata

from reelworks.plots.corpus import normalize
from reelworks.text import strip_invisible
from reelworks.tweeter.queue import read_queue

# Bidi override and isolate, zero-width space / joiner, BOM, tag characters, NUL, ESC, DEL, a C1
# control (CSI), private use (BMP and plane 15).
INVISIBLE = "\u202e\u2066\u200b\u200d\ufeff\U000e0041\U000e0042\x00\x1b\x7f\x9b\ue000\U000f0000"


def _visible_only(text: str) -> bool:
    return all(c == "\n" or unicodedata.category(c) not in ("Cc", "Cf", "Co") for c in text)


def test_strip_invisible_keeps_newlines_and_word_breaks():
    # Whitespace controls (tab, CR, NEL) separate words: they become spaces.
    assert strip_invisible(f"Sun{INVISIBLE}set\nover\tthe\rbay\x85at dusk") == "Sunset\nover the bay at dusk"
    assert strip_invisible("Amélie, 東京, naïve — “quoted”") == "Amélie, 東京, naïve — “quoted”"  # nothing to drop
    assert normalize(f" The\u202eDark{INVISIBLE}\tForest\n") == "TheDark Forest"


def test_curate_queues_no_invisible_characters(prepped, tmp_path):
    from reelworks.plots.curate import curate

    plot = "A lonely lighthouse keeper befriends a whale who can sing at night."
    rows = [{"title": f"Whale{INVISIBLE} Song", "plot": plot.replace("whale", f"wh{INVISIBLE}ale\u202e"),
             "genres": ["Drama"], "finished": True}]
    samples = tmp_path / "samples.jsonl"
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    queue = str(tmp_path / "queue.jsonl")
    assert curate(str(samples), prepped, str(tmp_path / "curated"), queue_uri=queue)["queued"] == 1
    [item] = read_queue(queue).items
    assert (item.title, item.plot) == ("Whale Song", plot)
    assert _visible_only((tmp_path / "queue.jsonl").read_text())
