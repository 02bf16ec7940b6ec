"""Reports: Markdown for the KFP UI, self-contained HTML with charts, saved to any URI."""
from __future__ import annotations

import html
import json
import re
from types import SimpleNamespace

import pytest

from reelworks import storage
from reelworks.reports import Report, escape, format_number


def sample_report() -> Report:
    report = Report("Plot data")
    report.text("10 movies read, 8 kept.")
    report.table(["genre", "movies"], [["Drama", 5], ["Sci|Fi", 3]])
    with report.figure("movies_per_year", "Movies per year") as ax:
        ax.bar([2000, 2001], [3, 5])
    report.metric("rows_kept", 8)
    return report


def test_markdown_and_html_render_everything():
    report = sample_report()
    md = report.to_markdown()
    assert md.startswith("# Plot data")
    assert "| Drama | 5 |" in md and "Sci\\|Fi" in md  # pipes in cells are escaped
    assert "![Movies per year](movies_per_year.png)" in md
    assert "data:image/png;base64," in report.to_markdown(embed_images=True)
    page = report.to_html()
    assert page.count("<img") == 1 and "data:image/png;base64,iVBOR" in page
    assert "<td>Sci|Fi</td>" in page


def test_save_to_s3(s3_bucket):
    sample_report().save(f"{s3_bucket}/run/report")
    keys = storage.list_keys(f"{s3_bucket}/run/report")
    assert keys == ["metrics.json", "movies_per_year.png", "report.html", "report.md"]
    assert storage.read_bytes(f"{s3_bucket}/run/report/movies_per_year.png")[:4] == b"\x89PNG"
    assert json.loads(storage.read_text(f"{s3_bucket}/run/report/metrics.json")) == {"rows_kept": 8.0}


def test_to_kfp_fills_artifacts(tmp_path):
    logged = {}
    markdown = SimpleNamespace(path=str(tmp_path / "md"))
    html_output = SimpleNamespace(path=str(tmp_path / "html"))
    metrics = SimpleNamespace(log_metric=lambda k, v: logged.__setitem__(k, v))
    sample_report().to_kfp(markdown=markdown, html_output=html_output, metrics=metrics)
    assert "data:image/png" in (tmp_path / "md").read_text()
    assert (tmp_path / "html").read_text().startswith("<!doctype html>")
    assert logged == {"rows_kept": 8.0}


# --------------------------------------------------------------------------- Markdown, escaping, numbers

ATTACKS = [
    "<img src=x onerror=alert(1)>",
    "[click me](javascript:alert(1))",
    "<javascript:alert(1)>",
    "![pixel](https://evil.example/track.png)",
    "# Fake heading",
    "Fake setext heading\n===",
    "1994. A year that starts a line",
    "- not a list\n+ nor this\n> nor a quote",
    "*emphasis*, _underscores_, `code`, ~~strike~~, a|pipe, a \\ backslash, &#106;avascript: &amp;",
    "<script>alert(1)</script>",
    "#SciFi #Drama\n\n## a heading too\n\nRomeo & Juliet &lt;3 a > b",
]


def markdown_renderer(html: bool):
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": html}).enable(["table", "strikethrough"])


@pytest.mark.parametrize("text", ATTACKS)
def test_escaped_text_renders_exactly_as_written(text):
    """What `escape` makes renders to the text itself, even where raw HTML is allowed (a
    permissive Markdown viewer): no element, link, heading or list comes out of it."""
    rendered = markdown_renderer(html=True).render(escape(text))
    paragraphs = [f"<p>{html.escape(p)}</p>" for p in text.split("\n\n")]
    assert rendered.strip() == "\n".join(paragraphs)


def test_data_cannot_inject_markup_into_reports(tmp_path):
    """Generated text everywhere a report shows data: title, heading, table cells, an escaped
    paragraph, a caption. Neither the Markdown (in a viewer that allows HTML) nor the HTML page
    holds an element, link or heading the report did not make."""
    evil = " ".join(a.replace("\n", " ") for a in ATTACKS)
    report = Report(f"Plots {ATTACKS[0]}")
    report.heading(ATTACKS[4] + ATTACKS[1])
    report.text(f"**Generated:** {escape(chr(10).join(ATTACKS))}")
    report.table(["title", "plot"], [[ATTACKS[1], evil], [ATTACKS[9], ATTACKS[6]]])
    report.image("poster", b"\x89PNG\r\n\x1a\n", caption=ATTACKS[3])
    report.save(str(tmp_path / "report"))
    page = (tmp_path / "report" / "report.html").read_text()
    markdown = (tmp_path / "report" / "report.md").read_text()
    for rendered in (page, markdown_renderer(html=True).render(markdown)):
        assert "<script" not in rendered and "<img src=x" not in rendered
        assert "href=" not in rendered  # no link at all: the report made none
        assert "evil.example/track.png\"" not in rendered  # no remote image either
        assert re.findall(r"<(h\d)>", rendered) == ["h1", "h2"]  # the title and the one heading
        assert re.findall(r"<img ", rendered) == ["<img "]  # the report's own picture only
        assert "&lt;img src=x onerror=alert(1)&gt;" in rendered  # shown as text


def test_html_is_the_markdown_rendered():
    """No Markdown syntax reaches the page as literal characters."""
    report = Report("Tweet queue")
    report.text("3 plot(s) waiting in `s3://b/plotbot/queue.jsonl`; **1. The Lighthouse** _next_.")
    page = report.to_html()
    assert "<code>s3://b/plotbot/queue.jsonl</code>" in page and "<strong>1. The Lighthouse</strong>" in page
    assert "<em>next</em>" in page and "`" not in page.split("<body>")[1]


@pytest.mark.parametrize("value, label, shown", [
    (1000, "seed", "1000"), (1000.0, "seed", "1000"), (1994, "year", "1994"), (2147483647, "seed", "2147483647"),
    (1250, "frame", "1250"), (17, "#", "17"), (12345, "movies", "12,345"), (123456.0, "rows_read", "123,456"),
    (117.5, "tempo_bpm", "117.5"), (0.123456, "recall", "0.1235"), (3.0, "F1", "3"), (1234.56, "seconds", "1,235"),
    (0.00012, "lr", "0.00012"), (float("nan"), "AP", "nan"), (True, "loops", "True"), ("1,000", "seed", "1,000"),
])
def test_numbers_are_formatted_for_what_they_are(value, label, shown):
    assert format_number(value, label) == shown


def test_tables_and_metrics_format_seeds_and_years_plainly():
    report = Report("Plan")
    report.table(["line", "lyric", "seed", "frames in segment"], [[1, "Neon rain", 1000, 12]])
    report.table(["hyper-parameter", "value"], [["seed", 4242], ["batch_size", 1024], ["year_min", 1980]])
    report.table(["genre", "movies"], [["Drama", 12345]])
    report.metric("seed", 1000)
    report.metric("rows_read", 123456)
    md = report.to_markdown()
    assert "| 1 | Neon rain | 1000 | 12 |" in md
    assert "| seed | 4242 |" in md and "| batch_size | 1,024 |" in md and "| year_min | 1980 |" in md
    assert "| Drama | 12,345 |" in md
    assert "| seed | 1000 |" in md and "| rows_read | 123,456 |" in md
    assert "1,000" not in md and "4,242" not in md and "1,980" not in md
