"""Lyrics as plain text (one line per lyric line) or LRC (`[mm:ss.xx]line`, timed lines).

LRC details handled: several time tags on one line (a repeated chorus line appears once per
tag), metadata tags (`[ar:...]`, `[ti:...]`), the `[offset:+/-ms]` tag (positive: lyrics
earlier), lines sorted by time. Plain text skips blank lines and section markers like
`[Chorus]`.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from reelworks import storage
from reelworks.errors import ReelworksError

_TIME_TAG = re.compile(r"\[(\d{1,3}):(\d{1,2}(?:[.:]\d{1,3})?)\]")
_META_TAG = re.compile(r"^\[([a-zA-Z#]+):(.*)\]\s*$")
_SECTION_MARKER = re.compile(r"^\[[^\]]*\]$|^\([^)]*\)$")


@dataclass(frozen=True)
class LyricLine:
    index: int             # 0-based position in the song
    text: str
    time_s: float | None   # start time from the LRC, None for plain text

    def to_dict(self) -> dict:
        return asdict(self)


def normalise(text: str) -> str:
    """What two lyric lines must share to count as the same line: case, spacing and
    punctuation at the ends do not matter."""
    return re.sub(r"\s+", " ", text).strip().strip(".,;:!?\"'").lower()


def parse(text: str, source: str = "lyrics") -> list[LyricLine]:
    """Lyric lines of an LRC or plain-text file; raises when there are none."""
    text = text.lstrip("\ufeff")
    raw_lines = text.splitlines()
    is_lrc = any(_TIME_TAG.match(line.strip()) for line in raw_lines)
    lines = _parse_lrc(raw_lines) if is_lrc else _parse_plain(raw_lines)
    if not lines:
        raise ReelworksError(f"{source} has no lyric lines")
    return lines


def _parse_plain(raw_lines: list[str]) -> list[LyricLine]:
    texts = [re.sub(r"\s+", " ", line).strip() for line in raw_lines]
    texts = [t for t in texts if t and not _SECTION_MARKER.match(t)]
    return [LyricLine(i, t, None) for i, t in enumerate(texts)]


def _parse_lrc(raw_lines: list[str]) -> list[LyricLine]:
    offset_s = 0.0
    timed: list[tuple[float, int, str]] = []
    for order, raw in enumerate(raw_lines):
        line = raw.strip()
        meta = _META_TAG.match(line)
        if meta and not _TIME_TAG.match(line):
            if meta.group(1).lower() == "offset":
                try:
                    offset_s = int(meta.group(2).strip()) / 1000.0
                except ValueError:
                    raise ReelworksError(f"malformed LRC offset tag {line!r}") from None
            continue
        times = []
        while (match := _TIME_TAG.match(line)):
            minutes, seconds = int(match.group(1)), float(match.group(2).replace(":", "."))
            times.append(minutes * 60 + seconds)
            line = line[match.end():].lstrip()
        words = re.sub(r"<\d+:\d+(?:\.\d+)?>", "", line)  # enhanced LRC word tags
        words = re.sub(r"\s+", " ", words).strip()
        if not times or not words:
            continue  # untimed text or an instrumental gap marker: no scene of its own
        timed += [(t, order, words) for t in times]
    timed.sort()
    # Positive offset = lyrics shown earlier (the LRC convention).
    return [LyricLine(i, words, round(max(0.0, t - offset_s), 3)) for i, (t, _, words) in enumerate(timed)]


def load(uri: str) -> list[LyricLine]:
    return parse(storage.read_text(uri), source=uri)


def to_lrc(lines: list[LyricLine]) -> str:
    out = []
    for line in lines:
        if line.time_s is None:
            raise ValueError("to_lrc needs timed lines")
        minutes, seconds = divmod(line.time_s, 60)
        out.append(f"[{int(minutes):02d}:{seconds:05.2f}]{line.text}")
    return "\n".join(out) + "\n"
