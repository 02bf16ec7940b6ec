"""The plot bot's evaluation report: how well it models plots and how usable its output is.

Validation perplexity of the language model (tiny GPT-2 or a fine-tuned pretrained one; also
before fine-tuning) and the LSTM baseline (same validation split, same tokenizer) against a
unigram baseline, per token and per word (models with other tokenizers compare per word),
training time, curation pass rate, the share of plots that are spell-checked English, drop
reasons, distinct-1/2 (share of unique word uni/bigrams in the generated plots), memorisation
rate (plots sharing a long n-gram with a real plot), up to ten curated plots (what would be
tweeted), an example of each drop reason and a few raw samples for contrast. Writes `report.md`, `report.html`,
`metrics.json` and `evaluation.json` below the output URI.
"""
from __future__ import annotations

import json
import logging

from reelworks import storage
from reelworks.errors import ReelworksError
from reelworks.metrics import job_metrics
from reelworks.plots.curate import add_dropped_examples, words
from reelworks.plots.train import MANIFEST
from reelworks.reports import Report

log = logging.getLogger(__name__)


def distinct_n(texts: list[str], n: int) -> float:
    """Unique n-grams / all n-grams over the texts (0 when there are none)."""
    grams = [tuple(ws[i:i + n]) for ws in map(words, texts) for i in range(len(ws) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def _model_row(name: str, manifest: dict, perplexity: float, word_perplexity: float | None) -> tuple:
    """A row of the models table; "n/a" for what a `plots train` output from before had no figure for."""
    return (name, perplexity, "n/a" if word_perplexity is None else word_perplexity, manifest["parameters"],
            manifest["steps"], manifest["world_size"], manifest.get("train_seconds", "n/a"))


def _jsonl(uri: str) -> list[dict]:
    return [json.loads(line) for line in storage.read_text(uri).splitlines() if line.strip()]


def _manifest(uri: str, what: str) -> dict:
    path = storage.join(uri, MANIFEST)
    if not storage.exists(path):
        raise ReelworksError(f"{uri} is not a finished `plots train` output ({what}: no {MANIFEST})")
    return json.loads(storage.read_text(path))


def evaluate(gpt2_uri: str, curated_uri: str, samples_uri: str, output_uri: str, lstm_uri: str | None = None) -> Report:
    from reelworks.plots.generate import read_samples

    with job_metrics("plots_evaluate"):
        gpt2 = _manifest(gpt2_uri, "GPT-2")
        lstm = _manifest(lstm_uri, "LSTM") if lstm_uri else None
        curation_file = storage.join(curated_uri, "curation.json")
        if not storage.exists(curation_file):
            raise ReelworksError(f"{curated_uri} is not a finished `plots curate` output (no curation.json)")
        curation = json.loads(storage.read_text(curation_file))
        samples = read_samples(samples_uri)
        kept = _jsonl(storage.join(curated_uri, "plots.jsonl"))
        rejected_uri = storage.join(curated_uri, "rejected.jsonl")
        rejected = _jsonl(rejected_uri) if storage.exists(rejected_uri) else []  # older curate outputs have none
        plots = [s["plot"] for s in samples if s.get("plot")]

        report = Report("Plot bot evaluation")
        report.heading("Language models (validation split)")
        name = "GPT-2 (tiny preset)" if gpt2.get("preset") == "tiny" else f"{gpt2.get('base_model')} fine-tuned"
        rows = [_model_row(name, gpt2, gpt2["val_perplexity"], gpt2.get("val_word_perplexity"))]
        if gpt2.get("base_val_perplexity"):
            rows.append((f"{gpt2.get('base_model')} before fine-tuning", gpt2["base_val_perplexity"],
                         gpt2.get("base_val_word_perplexity"), gpt2["parameters"], 0, 0, ""))
        if lstm:
            rows.append(_model_row("LSTM baseline", lstm, lstm["val_perplexity"], lstm.get("val_word_perplexity")))
        rows.append(("unigram baseline", gpt2["unigram_perplexity"], gpt2.get("unigram_word_perplexity", "n/a"),
                     gpt2["vocab_size"], 0, 0, ""))
        report.table(["model", "perplexity per token", "per word", "parameters", "steps", "workers",
                      "training seconds"], rows)
        report.text(f"GPT-2 validation perplexity {gpt2['val_perplexity']:.2f} against a unigram baseline of "
                    f"{gpt2['unigram_perplexity']:.2f}" + (f" and {lstm['val_perplexity']:.2f} for the LSTM."
                                                           if lstm else "."))
        with report.figure("perplexity", "Validation perplexity (lower is better, log scale)", size=(6, 3)) as ax:
            ax.barh([r[0] for r in rows], [r[1] for r in rows],
                    color=["#8c8c8c" if r[0] == "unigram baseline" else "#4c72b0" for r in rows])
            ax.set_xscale("log")
            ax.set_xlabel("perplexity")
        report.heading("Generated plots")
        dropped = {r: c for r, c in curation["dropped"].items() if c}
        report.text(f"{curation['kept']} of {curation['samples']} plots passed curation "
                    f"({curation['pass_rate']:.0%}).")
        english = curation.get("english_share")  # curation.json from before it had the figure: None
        if english is not None:
            report.text(f"{english:.0%} of the curated plots are spell-checked English "
                        f"({curation['english_share_samples']:.0%} of all generated plots).")
        if dropped:
            report.table(["dropped because", "plots"], sorted(dropped.items(), key=lambda kv: -kv[1]))
        d1, d2 = distinct_n(plots, 1), distinct_n(plots, 2)
        report.table(["measure", "value"], [("distinct-1", d1), ("distinct-2", d2),
                                            ("memorisation rate", curation["memorisation_rate"])])
        shown = [{"title": k["title"], "plot": k["plot"]} for k in kept[:10]]
        report.heading(f"Curated plots ({len(shown)} of {curation['kept']} kept)")
        if shown:
            report.table(["title", "plot"], [(s["title"], s["plot"]) for s in shown])
        else:
            report.text("No generated plot passed curation: nothing would be tweeted.")
        examples = add_dropped_examples(report, rejected)
        raw = [{"title": s.get("title", ""), "plot": s.get("plot", "")} for s in samples[:3]]
        report.heading("Raw samples (before curation)")
        report.table(["title", "plot"], [(s["title"], s["plot"]) for s in raw])

        report.metric("gpt2_val_perplexity", gpt2["val_perplexity"])
        report.metric("unigram_val_perplexity", gpt2["unigram_perplexity"])
        if gpt2.get("val_word_perplexity"):
            report.metric("gpt2_val_word_perplexity", gpt2["val_word_perplexity"])
        if gpt2.get("base_val_perplexity"):
            report.metric("base_val_perplexity", gpt2["base_val_perplexity"])
        if gpt2.get("train_seconds") is not None:
            report.metric("gpt2_train_seconds", gpt2["train_seconds"])
        if lstm:
            report.metric("lstm_val_perplexity", lstm["val_perplexity"])
        if english is not None:
            report.metric("curated_english_share", english)
            report.metric("generated_english_share", curation["english_share_samples"])
        report.metric("curation_pass_rate", curation["pass_rate"])
        report.metric("distinct_1", d1)
        report.metric("distinct_2", d2)
        report.metric("memorisation_rate", curation["memorisation_rate"])
        report.save(output_uri)
        storage.write_text(storage.join(output_uri, "evaluation.json"),
                           json.dumps({**report.metrics, "dropped": curation["dropped"],
                                       "curated": shown, "raw_samples": raw,
                                       "rejected_examples": list(examples.values())}, indent=2))
        log.info("evaluation: %s", {k: round(v, 4) for k, v in report.metrics.items()})
        return report
