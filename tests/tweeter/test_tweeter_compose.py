"""Tweet composition: X's weighted count, hashtags, threads, skips."""
import pytest

from reelworks.errors import ReelworksError
from reelworks.tweeter.compose import compose, hashtag
from reelworks.tweeter.queue import QueueItem
from reelworks.tweeter.text import weighted_length


def test_single_tweet_with_hashtags_from_genres_then_keywords():
    item = QueueItem("Signal Lost", "An astronaut hears her own voice on the radio.",
                     genres=["Sci-Fi", "sci fi", "Film-Noir"], keywords=["space station", "radio"])
    result = compose(item)
    assert result.skipped is None
    assert result.texts == ["Signal Lost\n\nAn astronaut hears her own voice on the radio.\n\n"
                            "#SciFi #FilmNoir #SpaceStation"]


@pytest.mark.parametrize("term, tag", [("Sci-Fi", "#SciFi"), ("film noir", "#FilmNoir"), ("1984", None),
                                       ("Über-cool", "#ÜberCool"), ("!!!", None), ("rock'n'roll", "#RockNRoll")])
def test_hashtag(term, tag):
    assert hashtag(term) == tag


def test_weighted_count_not_len():
    # CJK counts 2 per character on X: 140 of them fill a tweet that len() calls half full.
    title, plot = "東京", "物語" * 68  # 2 + 136 characters, 276 weighted, plus newlines
    item = QueueItem(title, plot, genres=["Drama"])
    result = compose(item)
    assert weighted_length(result.texts[0]) <= 280
    assert len(result.texts[0]) < 150
    assert "#Drama" not in result.texts[0]  # the hashtag no longer fits and is dropped, not the plot


def test_long_plot_becomes_numbered_thread_within_limit():
    plot = "She draws a town and it appears by morning. " * 10
    result = compose(QueueItem("The Cartographer", plot, genres=["Fantasy"]), max_thread=3)
    assert result.is_thread and len(result.texts) == 2
    assert all(weighted_length(t) <= 280 for t in result.texts)
    assert result.texts[0].startswith("The Cartographer\n\n") and "(1/2)" in result.texts[0]
    assert result.texts[1].endswith("#Fantasy") and "(2/2)" in result.texts[1]
    joined = " ".join(t.split(" (")[0] for t in result.texts)
    assert joined.count("She draws a town") == 10  # nothing lost at the breaks


def test_too_long_is_skipped_with_reason():
    item = QueueItem("Epic", "word " * 400)
    assert "more than a 3-tweet thread" in compose(item).skipped
    assert "over 280" in compose(item, overflow="skip").skipped


def test_bad_options():
    with pytest.raises(ReelworksError, match="overflow"):
        compose(QueueItem("a", "b"), overflow="split")
