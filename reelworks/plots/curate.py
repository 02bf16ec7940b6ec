"""`plots curate`: keep the generated plots worth tweeting, and queue them for the tweeter.

A plot is kept when, checked in this order (the first failing check is its drop reason):

- `unfinished`     the model stopped it (END token) and it ends in sentence punctuation;
- `no_title`       it has a title and a plot of at least `min_words` words;
- `short_title`    its title has at least three letters or digits, weighted the way X weighs
                   them (a CJK character counts two): "G" and "Up" are no titles;
- `unbalanced`     its quotes and brackets pair up (`"`, `“”`, `()`, `[]`, `{}`);
- `too_long`       title, plot and a hashtag budget fit one tweet, counted the way X counts;
- `non_words`      at most `max_unknown` of its plot's words are unknown to the vocabulary
                   (the training plots and titles plus pyspellchecker's English word list,
                   shipped in its wheel), nor is a title of up to 4 letters all unknown words;
- `real_title`     its title is not the title of a real movie from the training data;
- `memorised`      it shares no `ngram`-word sequence with a real plot (no copied text);
- `deny_word`      it contains no word from the deny list;
- `off_genre`      it matches the keyword / genre word lists, when any are given;
- `duplicate`      it is not a near-duplicate (word 3-gram Jaccard >= 0.5) or title repeat
                   of a plot kept before it.

Writes `plots.json` (title -> plot, the plot bot's own format), `plots.jsonl` (with a stable
id and metadata), `rejected.jsonl` (each dropped plot with its reason), `curation.json`
(counts by reason) and a report; appends the kept plots to the tweet queue
(`reelworks.tweeter.queue`) when a queue URI is given.
"""
from __future__ import annotations

import json
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

from reelworks import storage
from reelworks.errors import ReelworksError
from reelworks.metrics import job_metrics
from reelworks.plots.corpus import normalize, parse_example
from reelworks.reports import Report
from reelworks.tweeter.queue import QueueItem, append_to_queue, plot_id
from reelworks.tweeter.text import MAX_WEIGHTED_LENGTH, weighted_length

log = logging.getLogger(__name__)
REASONS = ("unfinished", "no_title", "short_title", "unbalanced", "too_long", "non_words", "real_title",
           "memorised", "deny_word", "off_genre", "duplicate")
_WORD = re.compile(r"[\w']+")
_SENTENCE_END = re.compile(r"[.!?…。！？][\"'”’)」]*$")
_BRACKETS = {")": "(", "]": "[", "}": "{", "”": "“"}
#: Share of a plot's words that may be unknown to the vocabulary. Real plots (2,987 TMDB
#: overviews checked against the vocabulary of 7,000 others plus the word list) have a median
#: of 0, a 95th percentile of 0.05 and a 99th of 0.09; 0.3% of them are above 0.15.
MAX_UNKNOWN = 0.15
#: A title this short (letters and digits) made only of unknown words is babble ("SAa");
#: 0.5% of those real titles are ("Antz", "TMNT"), longer ones are often coinages ("Zoolander").
SHORT_TITLE_CHARS = 4


def words(text: str) -> list[str]:
    return _WORD.findall(text.casefold())


def word_list(name_or_uri: str) -> set[str]:
    """A shipped list (`sci-fi`, `fantasy`, `horror`, `deny`) or a file at a URI: one term a line."""
    package = resources.files("reelworks.plots") / "data"
    shipped = package / ("deny.txt" if name_or_uri == "deny" else f"genres/{name_or_uri}.txt")
    if shipped.is_file():
        text = shipped.read_text(encoding="utf-8")
    elif storage.exists(name_or_uri):
        text = storage.read_text(name_or_uri)
    else:
        known = sorted(p.name.removesuffix(".txt") for p in (package / "genres").iterdir())
        raise ReelworksError(f"no word list {name_or_uri!r}: use one of {', '.join(known)} or a file URI")
    return {line.split("#")[0].strip().casefold() for line in text.splitlines()} - {""}


@lru_cache(maxsize=1)
def english_words() -> frozenset[str]:
    """pyspellchecker's English word list (160,000 words with their inflected forms)."""
    from spellchecker import SpellChecker

    return frozenset(SpellChecker(language="en", distance=1).word_frequency.keys())


def _bare(word: str) -> str:
    """A word without possessive or surrounding apostrophes: "killer's" -> "killer"."""
    word = word.strip("'")
    return word[:-2] if word.endswith("'s") else word


def unknown_share(text_words: list[str], vocabulary: set[str] | frozenset[str]) -> float:
    """Share of the (non-numeric) words that are neither in `vocabulary` nor in the English list."""
    english = english_words()
    checked = [w for w in map(_bare, text_words) if w and not w.isdigit()]
    unknown = [w for w in checked if w not in vocabulary and w not in english]
    return len(unknown) / len(checked) if checked else 0.0


def is_english(text: str, max_unknown: float = MAX_UNKNOWN) -> bool:
    """Spell-checked English: the `non_words` check against pyspellchecker's list alone, without
    the training vocabulary (which holds every name and foreign word of the real plots)."""
    return unknown_share(words(text), frozenset()) <= max_unknown


def english_share(plots: list[str]) -> float:
    """Share of the (non-empty) plots that are spell-checked English; 0 when there are none."""
    plots = [p for p in plots if p.strip()]
    return sum(map(is_english, plots)) / len(plots) if plots else 0.0


def balanced(text: str) -> bool:
    """Straight double quotes come in pairs; brackets and curly double quotes nest properly."""
    if text.count('"') % 2:
        return False
    stack = []
    for char in text:
        if char in "([{“":
            stack.append(char)
        elif char in _BRACKETS:
            if not stack or stack.pop() != _BRACKETS[char]:
                return False
    return not stack


def tweet_text(title: str, plot: str) -> str:
    """What the tweet will hold besides hashtags: the title, a blank line, the plot."""
    return f"{title}\n\n{plot}"


def ngrams(tokens: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)}


@dataclass
class Curator:
    real_titles: set[str]
    training_plots: list[str]
    ngram: int = 8
    min_words: int = 8
    hashtag_budget: int = 30
    deny: set[str] = field(default_factory=set)
    topic_words: set[str] = field(default_factory=set)  # empty: no keyword filter
    near_duplicate: float = 0.5
    max_unknown: float = MAX_UNKNOWN

    def __post_init__(self):
        self._training = set()
        self.vocabulary: set[str] = set()
        for title in self.real_titles:
            self.vocabulary.update(map(_bare, words(title)))
        self.real_titles = {normalize(t).casefold() for t in self.real_titles}
        for plot in self.training_plots:
            plot_words = words(plot)
            self.vocabulary.update(map(_bare, plot_words))
            self._training |= {hash(g) for g in ngrams(plot_words, self.ngram)}
        self._kept_shingles: list[set] = []
        self._kept_titles: set[str] = set()

    def _matches(self, terms: set[str], text_words: list[str]) -> list[str]:
        joined = f" {' '.join(text_words)} "
        return sorted(t for t in terms if (f" {t} " in joined if " " in t else t in set(text_words)))

    def memorised(self, plot: str) -> bool:
        return any(hash(g) in self._training for g in ngrams(words(plot), self.ngram))

    def check(self, title: str, plot: str, finished: bool = True) -> tuple[str | None, list[str]]:
        """(drop reason or None, matched topic words) for one plot; remembers what it keeps."""
        plot_words = words(plot)
        if not finished or not _SENTENCE_END.search(plot):
            return "unfinished", []
        if not title.strip() or len(plot_words) < self.min_words:
            return "no_title", []
        if weighted_length("".join(c for c in title if c.isalnum())) < 3:  # X's weights: "東京" is no short title
            return "short_title", []
        if not (balanced(title) and balanced(plot)):
            return "unbalanced", []
        if weighted_length(tweet_text(title, plot)) + self.hashtag_budget > MAX_WEIGHTED_LENGTH:
            return "too_long", []
        short = sum(c.isalnum() for c in title) <= SHORT_TITLE_CHARS
        if (unknown_share(plot_words, self.vocabulary) > self.max_unknown
                or (short and unknown_share(words(title), self.vocabulary) == 1.0)):
            return "non_words", []
        if normalize(title).casefold() in self.real_titles:
            return "real_title", []
        if self.memorised(plot):
            return "memorised", []
        if self._matches(self.deny, plot_words + words(title)):
            return "deny_word", []
        matched = self._matches(self.topic_words, plot_words + words(title)) if self.topic_words else []
        if self.topic_words and not matched:
            return "off_genre", []
        shingles = ngrams(plot_words, 3) or {tuple(plot_words)}
        if normalize(title).casefold() in self._kept_titles or any(
                len(shingles & kept) / len(shingles | kept) >= self.near_duplicate for kept in self._kept_shingles):
            return "duplicate", []
        self._kept_shingles.append(shingles)
        self._kept_titles.add(normalize(title).casefold())
        return None, matched


def curate(samples_uri: str, data_uri: str, output_uri: str, *, queue_uri: str | None = None,
           genres: list[str] | None = None, keywords: list[str] | None = None, deny: str | None = "deny",
           ngram: int = 8, hashtag_budget: int = 30, min_words: int = 8, max_unknown: float = MAX_UNKNOWN) -> dict:
    """Filter `plots generate` output against the `plots prep` data; returns curation.json."""
    from reelworks.plots.generate import read_samples
    from reelworks.plots.prep import read_lines

    if ngram < 3:
        raise ReelworksError(f"ngram must be at least 3 words, got {ngram}")
    if not 0 <= max_unknown <= 1:
        raise ReelworksError(f"max_unknown is a share of words between 0 and 1, got {max_unknown}")
    with job_metrics("plots_curate") as metrics:
        samples = read_samples(samples_uri)
        training_plots = [parse_example(line).plot for line in read_lines(data_uri, "train.txt")]
        topic = set().union(*(word_list(g) for g in genres or [])) | {k.casefold() for k in keywords or []}
        curator = Curator(set(read_lines(data_uri, "titles.txt")), training_plots, ngram=ngram, min_words=min_words,
                          hashtag_budget=hashtag_budget, deny=word_list(deny) if deny else set(), topic_words=topic,
                          max_unknown=max_unknown)
        reasons: Counter = Counter()
        kept, rejected = [], []
        for row in samples:
            title, plot = normalize(row.get("title", "")), normalize(row.get("plot", ""))
            reason, matched = curator.check(title, plot, bool(row.get("finished", True)))
            metrics.items.inc()
            if reason:
                reasons[reason] += 1
                metrics.drop(reason)
                rejected.append({"title": title, "plot": plot, "reason": reason})
                continue
            kept.append({"id": plot_id(title, plot), "title": title, "plot": plot, "genres": row.get("genres", []),
                         "keywords": matched, "model": row.get("model", ""), "prompt": row.get("prompt", ""),
                         "sampling": row.get("sampling", {}), "seed": row.get("seed")})
        memorised = sum(curator.memorised(normalize(r.get("plot", ""))) for r in samples)
        added = 0
        if queue_uri:
            added = append_to_queue(queue_uri, [QueueItem(title=k["title"], plot=k["plot"], genres=k["genres"],
                                                          keywords=k["keywords"], model=k["model"]) for k in kept])
        summary = {"samples": len(samples), "kept": len(kept), "pass_rate": len(kept) / max(len(samples), 1),
                   "english_share": english_share([k["plot"] for k in kept]),
                   "english_share_samples": english_share([normalize(r.get("plot", "")) for r in samples]),
                   "dropped": {r: reasons.get(r, 0) for r in REASONS}, "memorisation_rate":
                   memorised / max(len(samples), 1), "queued": added, "queue": queue_uri or "",
                   "filters": {"genres": genres or [], "keywords": keywords or [], "deny": deny or "",
                               "ngram": ngram, "hashtag_budget": hashtag_budget, "max_unknown": max_unknown}}
        storage.write_text(storage.join(output_uri, "plots.json"),
                           json.dumps({k["title"]: k["plot"] for k in kept}, indent=2, ensure_ascii=False))
        storage.write_text(storage.join(output_uri, "plots.jsonl"),
                           "".join(json.dumps(k, ensure_ascii=False) + "\n" for k in kept))
        storage.write_text(storage.join(output_uri, "rejected.jsonl"),
                           "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rejected))
        curation_report(summary, kept, rejected).save(storage.join(output_uri, "report"))
        storage.write_text(storage.join(output_uri, "curation.json"), json.dumps(summary, indent=2))  # last
        metrics.gauge("reelworks_plots_curation_pass_rate", "Share of generated plots kept").set(summary["pass_rate"])
        metrics.gauge("reelworks_plots_curated_english_share",
                      "Share of kept plots that are spell-checked English").set(summary["english_share"])
        metrics.counter("reelworks_plots_queued_total", "Plots appended to the tweet queue").inc(added)
        log.info("curate: kept %d of %d plots (%s); %d new in the queue", len(kept), len(samples),
                 {r: c for r, c in reasons.items()}, added)
        return summary


def curation_report(summary: dict, kept: list[dict], rejected: list[dict] = ()) -> Report:
    report = Report("Plot curation")
    report.text(f"{summary['kept']:,} of {summary['samples']:,} generated plots kept "
                f"({summary['pass_rate']:.0%}); {summary['queued']:,} newly queued for the tweeter."
                + (f" {summary['english_share']:.0%} of the kept plots are spell-checked English "
                   f"({summary['english_share_samples']:.0%} of all generated)." if "english_share" in summary else ""))
    report.table(["dropped because", "plots"], [(r, c) for r, c in summary["dropped"].items()])
    if kept:
        report.heading("Kept plots")
        report.table(["title", "plot"], [(k["title"], k["plot"]) for k in kept[:10]])
    add_dropped_examples(report, rejected)
    report.metric("curation_pass_rate", summary["pass_rate"])
    report.metric("memorisation_rate", summary["memorisation_rate"])
    if "english_share" in summary:  # curation.json from before it had the figure
        report.metric("curated_english_share", summary["english_share"])
    return report


def add_dropped_examples(report: Report, rejected: list[dict]) -> dict[str, dict]:
    """One rejected plot per reason, so a reader sees what each rule caught; returns them."""
    examples: dict[str, dict] = {}
    for row in rejected:
        examples.setdefault(row["reason"], row)
    if examples:
        report.heading("Dropped plots (one example per reason)")
        report.table(["reason", "title", "plot"], [(r, x["title"], x["plot"]) for r, x in examples.items()])
    return examples
