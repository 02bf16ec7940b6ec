import json
import subprocess
import sys

import pytest

from reelworks import storage
from reelworks.errors import ReelworksError
from reelworks.plots.curate import Curator, curate, word_list
from reelworks.plots.evaluate import distinct_n, evaluate
from reelworks.plots.generate import Sampling, generate, read_samples
from reelworks.tweeter.queue import plot_id, read_queue

FEW = Sampling(max_new_tokens=40)


@pytest.fixture(scope="module")
def samples(tiny_model, tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("gen") / "samples.jsonl")
    generate(tiny_model, out, n=8, genres=["Horror", "Comedy"], seed=3, batch_size=8, sampling=FEW)
    return out


def test_generate_writes_jsonl_with_prompts_and_parameters(samples, tiny_model, tmp_path):
    rows = read_samples(samples)
    assert len(rows) == 8
    assert {r["prompt_kind"] for r in rows} == {"genre"} and rows[1]["genres"][:1] == ["Comedy"]
    assert rows[0]["sampling"]["max_new_tokens"] == 40 and rows[0]["seed"] == 3 and rows[0]["model"] == tiny_model
    assert all(isinstance(r["title"], str) and isinstance(r["finished"], bool) for r in rows)
    again = str(tmp_path / "again.jsonl")
    generate(tiny_model, again, n=8, genres=["Horror", "Comedy"], seed=3, batch_size=8, sampling=FEW)
    assert read_samples(again) == rows  # seeded: reproducible
    titled = str(tmp_path / "titled.jsonl")
    generate(tiny_model, titled, n=2, titles=["Moon Garden"], sampling=FEW)
    assert [r["title"] for r in read_samples(titled)] == ["Moon Garden"] * 2
    generate(tiny_model, str(tmp_path / "free.jsonl"), n=2, sampling=FEW)


def test_generate_bad_model_is_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "reelworks", "plots", "generate", "--model", str(tmp_path),
                             "--output", "x.jsonl"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.strip().splitlines()[-1].startswith("error: no trained model")
    with pytest.raises(ReelworksError, match="temperature"):
        generate(str(tmp_path), str(tmp_path / "x.jsonl"), sampling=Sampling(temperature=0))


def _curator(**kw):
    training = ["A retired detective hunts a serial killer through the rainy streets of an old port city."]
    return Curator({"Jaws", "The Godfather"}, training, deny=word_list("deny"), **kw)


def test_curator_reasons():
    c = _curator()
    ok = "A lonely lighthouse keeper befriends a whale who can sing the songs of drowned sailors."
    assert c.check("Whale Song", ok) == (None, [])
    assert c.check("Cut", "A lonely lighthouse keeper befriends a whale who can sing the", True)[0] == "unfinished"
    assert c.check("Cut", ok, finished=False)[0] == "unfinished"
    assert c.check("", ok)[0] == "no_title"
    assert c.check("Long", " ".join(["A man walks a very long way home."] * 8))[0] == "too_long"
    assert c.check("jaws", "A shark terrorises a small beach town during the summer holidays.")[0] == "real_title"
    copied = "Years later, a retired detective hunts a serial killer through the rainy streets of Paris."
    assert c.check("Rain", copied)[0] == "memorised"
    assert c.check("Bad", "A porn star runs for mayor of a small town and wins by a landslide.")[0] == "deny_word"
    near = "A lonely lighthouse keeper befriends a whale who can sing the songs of drowned pirates."
    assert c.check("Whale Song II", near)[0] == "duplicate"
    assert c.check("Whale Song", "Two sisters open a bakery on the moon and fight about the recipe.")[0] == "duplicate"
    scifi = _curator(topic_words=word_list("sci-fi"))
    assert scifi.check("Red", "An astronaut stranded on Mars grows potatoes in her own waste.") == (None, ["astronaut", "mars"])
    assert scifi.check("Cake", "Two sisters open a bakery in Paris and fight about the family recipe.")[0] == "off_genre"
    # X counts CJK characters double: these 160 characters weigh about 290.
    cjk = " ".join(["東京の夜"] * 32) + "。"
    assert len(cjk) < 280 - 30 and c.check("東京", cjk)[0] == "too_long"


# What the tiny preset really produced (issue 9.4): babble titles and plots of non-words.
NONSENSE = [
    ("G", "A detective hunts a killer through the streets of an old port city.", "short_title"),
    ("Up", "A detective hunts a killer through the streets of an old port city.", "short_title"),
    ("SAa", "A detective hunts a killer through the streets of an old port city.", "non_words"),
    ("The Series", "A cisled by an an a series of the frobnar wrelked quonts.", "non_words"),
    ("Harbour Lights", "A detective (retired hunts a killer through the streets of an old port.", "unbalanced"),
    ("Harbour Lights", 'A detective says "never again and hunts a killer through an old port.', "unbalanced"),
    ("Harbour (Lights", "A detective hunts a killer through the streets of an old port city.", "unbalanced"),
    ("Harbour Lights", "A detective [retired) hunts a killer through the streets of an old port.", "unbalanced"),
]


@pytest.mark.parametrize("title, plot, reason", NONSENSE)
def test_curator_rejects_nonsense(title, plot, reason):
    assert _curator().check(title, plot) == (reason, [])


def test_curator_keeps_real_words_and_the_unknown_word_threshold():
    c = _curator()
    # Brackets and quotes that pair up, names the word list lacks, a short real-word title: kept.
    ok = 'A detective (retired) hunts the "Harbour Strangler" through the streets of Zagreb.'
    assert c.check("Fog", ok) == (None, [])
    ten = "one two three four five six seven eight nine ten".split()
    # 1 unknown word in 10 is under the 15% threshold, 2 in 10 are over it.
    assert c.check("Counting Sheep", " ".join(["Zorblat"] + ten[1:]) + ".")[0] is None
    assert c.check("Counting Goats", " ".join(["Zorblat", "Quibnex"] + ten[2:]) + ".")[0] == "non_words"
    assert _curator(max_unknown=0.25).check("Counting Goats", " ".join(["Zorblat", "Quibnex"] + ten[2:]) + ".")[0] is None
    # Words of the training corpus count as known even when the word list lacks them.
    corpus = Curator(set(), ["Zorblat and Quibnex rule the planet Vrell with an iron fist."])
    assert corpus.check("Counting Goats", " ".join(["Zorblat", "Quibnex"] + ten[2:]) + ".")[0] is None


def test_curate_writes_outputs_and_queue_without_duplicates(prepped, tmp_path, s3_bucket):
    rows = [{"title": "Whale Song", "plot": "A lonely lighthouse keeper befriends a whale who can sing at night.",
             "genres": ["Drama"], "finished": True, "model": "m", "prompt": "p", "sampling": {}, "seed": 1},
            {"title": "Cut Off", "plot": "Someone walks into a", "finished": False},
            {"title": "Moon Bakery", "plot": "Two sisters open a bakery on the moon and fight about the recipe.",
             "finished": True}]
    src = f"{s3_bucket}/gen/samples.jsonl"
    storage.write_text(src, "".join(json.dumps(r) + "\n" for r in rows))
    queue = f"{s3_bucket}/queue/plots.jsonl"
    summary = curate(src, prepped, f"{s3_bucket}/curated", queue_uri=queue)
    assert summary["kept"] == 2 and summary["dropped"]["unfinished"] == 1 and summary["queued"] == 2
    assert json.loads(storage.read_text(f"{s3_bucket}/curated/plots.json")) == {r["title"]: r["plot"] for r in
                                                                              (rows[0], rows[2])}
    kept = [json.loads(x) for x in storage.read_text(f"{s3_bucket}/curated/plots.jsonl").splitlines()]
    assert kept[0]["id"] == plot_id(rows[0]["title"], rows[0]["plot"]) and kept[0]["genres"] == ["Drama"]
    assert curate(src, prepped, str(tmp_path / "again"), queue_uri=queue)["queued"] == 0  # ids already queued
    assert [i.title for i in read_queue(queue).items] == ["Whale Song", "Moon Bakery"]


def test_curate_counts_each_reason_and_evaluation_shows_curated_plots(prepped, tiny_model, tmp_path, pushgateway,
                                                                      read_pushgateway, monkeypatch):
    monkeypatch.setenv("REELWORKS_PUSHGATEWAY_URL", pushgateway)
    monkeypatch.setenv("REELWORKS_RUN_ID", "t-curate")
    good = [("Whale Song", "A lonely lighthouse keeper befriends a whale who can sing at night."),
            ("Moon Bakery", "Two sisters open a bakery on the moon and fight about the recipe.")]
    rows = [{"title": t, "plot": p, "finished": True} for t, p, _ in NONSENSE[:4]] + \
        [{"title": t, "plot": p, "finished": True} for t, p in good]
    samples = str(tmp_path / "samples.jsonl")
    storage.write_text(samples, "".join(json.dumps(r) + "\n" for r in rows))
    summary = curate(samples, prepped, str(tmp_path / "curated"))
    assert summary["kept"] == 2 and summary["dropped"]["short_title"] == 2 and summary["dropped"]["non_words"] == 2
    rejected = [json.loads(x) for x in (tmp_path / "curated" / "rejected.jsonl").read_text().splitlines()]
    assert [(r["title"], r["reason"]) for r in rejected] == [(t, why) for t, _, why in NONSENSE[:4]]
    scraped = read_pushgateway(pushgateway)
    for reason, n in (("short_title", 2), ("non_words", 2)):
        key = f'reelworks_job_items_dropped_total{{job="plots_curate",reason="{reason}",run="t-curate"}}'
        assert scraped[key] == n
    report = evaluate(tiny_model, str(tmp_path / "curated"), samples, str(tmp_path / "eval"), lstm_uri=None)
    md = (tmp_path / "eval" / "report.md").read_text()
    curated_part, rest = md.split("## Curated plots")[1].split("## Dropped plots")
    # The curated section holds the kept plots and none of the rejected ones; babble shows only as dropped.
    assert all(t in curated_part for t, _ in good) and "cisled" not in curated_part and "| SAa |" not in curated_part
    assert "| non_words | SAa |" in rest and "| short_title | G |" in rest
    saved = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert [s["title"] for s in saved["curated"]] == [t for t, _ in good]
    assert report.metrics["curation_pass_rate"] == pytest.approx(2 / 6)
    # Both kept plots are spell-checked English; of all six, the babble one is not.
    assert summary["english_share"] == 1.0 and summary["english_share_samples"] == pytest.approx(5 / 6)
    assert report.metrics["curated_english_share"] == 1.0 and "100% of the curated plots are spell-checked" in md


def test_curate_and_evaluate_the_tiny_model(samples, prepped, tiny_model, tmp_path):
    summary = curate(samples, prepped, str(tmp_path / "curated"))
    assert summary["samples"] == 8 and sum(summary["dropped"].values()) + summary["kept"] == 8
    report = evaluate(tiny_model, str(tmp_path / "curated"), samples, str(tmp_path / "eval"), lstm_uri=None)
    assert report.metrics["gpt2_val_perplexity"] < report.metrics["unigram_val_perplexity"]
    # Per word (what models with other tokenizers compare on): a word is more than one token here.
    assert report.metrics["gpt2_val_word_perplexity"] > report.metrics["gpt2_val_perplexity"]
    assert report.metrics["gpt2_train_seconds"] > 0
    md = (tmp_path / "eval" / "report.md").read_text()
    assert "unigram baseline" in md and "## Curated plots" in md and "## Raw samples (before curation)" in md
    assert distinct_n(["a b a b"], 2) == pytest.approx(2 / 3)
