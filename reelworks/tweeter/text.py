"""Tweet length the way X counts it (weighted: most CJK and emoji count 2, URLs 23).

`plots curate` uses this to keep only plots that fit, the tweeter to compose them.
"""
from __future__ import annotations

import warnings

MAX_WEIGHTED_LENGTH = 280


def weighted_length(text: str) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # twitter-text-parser imports the deprecated pkg_resources
        from twitter_text import parse_tweet

    return parse_tweet(text).weightedLength


def fits(text: str, limit: int = MAX_WEIGHTED_LENGTH) -> bool:
    return weighted_length(text) <= limit


def is_valid(text: str) -> bool:
    """X would accept it: not empty, no invalid characters, within the weighted limit."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from twitter_text import parse_tweet

    return bool(parse_tweet(text).valid)
