"""Text that reaches readers (queued plots, tweets) keeps only characters a reader can see.

Generated or imported text can carry characters that change what a reader sees without
showing themselves: bidi overrides (U+202E) reverse the text after them, zero-width spaces and
joiners hide inside words, Unicode tag characters (U+E0000..) carry invisible ASCII, and
NUL/ESC/DEL are terminal controls. `plots curate` drops them before queueing and the tweeter
again before tweeting, both through `strip_invisible`.
"""
from __future__ import annotations

import unicodedata

# Control, format, private use, and lone surrogates (which cannot even be encoded as UTF-8).
_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cs"})


def strip_invisible(text: str) -> str:
    """`text` without control (Cc), format (Cf) or private-use (Co) characters. Newlines stay;
    the other whitespace controls (tab, CR, ...) become a space, so the words they separated
    stay apart."""
    if text.isprintable():  # the common case, checked in C: nothing to drop
        return text
    return "".join(_visible(c) for c in text)


def _visible(char: str) -> str:
    if char == "\n" or unicodedata.category(char) not in _DROPPED_CATEGORIES:
        return char
    return " " if char.isspace() else ""
