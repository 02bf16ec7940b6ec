"""Reports people look at: Markdown, self-contained HTML with charts, and scalar metrics.

A step builds one `Report` and saves it next to its outputs; its Kubeflow component also
hands the same report to the KFP UI (`Output[Markdown]`, `Output[HTML]`, `Output[Metrics]`).

    report = Report("Plot data")
    report.text("10,000 movies read, 9,412 kept.")
    report.table(["genre", "movies"], rows)
    with report.figure("movies_per_year", "Movies per year") as ax:
        ax.bar(years, counts)
    report.metric("rows_kept", 9412)
    report.save("s3://bucket/run/prep/report")

`text` takes Markdown: text that comes from data (titles, generated plots, prompts, lyrics,
URIs) goes through `escape` (or `code`) so that it shows as written and cannot add links,
headings or HTML. Titles, headings, captions and table cells are escaped here. The HTML page
is the same Markdown rendered by markdown-it-py with raw HTML off (its link check refuses
`javascript:` and similar URLs), so data cannot reach the page as markup either way.
"""
from __future__ import annotations

import base64
import functools
import html
import io
import json
import math
import numbers
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, Sequence

from reelworks import storage

# Backslash-escaped wherever they stand: they start emphasis, code, links, HTML, tables or
# strikethrough, and `&` an entity. An underscore between two letters or digits cannot
# (`queue_depth` stays readable), nor can `&` that starts no entity (`Romeo & Juliet`).
_MARKDOWN_INLINE = re.compile(r"([\\`*\[\]<|~]|&(?=#?\w+;)|(?<![^\W_])_|_(?![^\W_]))")
# At the start of a line they make headings (`#`s then a space), quotes, lists, setext
# headings or thematic breaks ("1994." too). Elsewhere they are plain (`#SciFi`, `a > b`).
_MARKDOWN_LINE_START = re.compile(r"^([-+=>]|#(?=#*(?:[ \t]|$))|\d+(?=[.)]))", re.M)


def escape(text: object) -> str:
    """`text` as Markdown that shows exactly it: no link, heading, list, emphasis or HTML.
    Paragraph breaks (blank lines) stay; leading spaces go (they would make a code block)."""
    lines = [line.lstrip() for line in str(text).split("\n")]
    escaped = _MARKDOWN_INLINE.sub(r"\\\1", "\n".join(lines))
    return _MARKDOWN_LINE_START.sub(lambda m: m[1] + "\\" if m[1][0].isdigit() else "\\" + m[1], escaped)


def code(text: object) -> str:
    """`text` as an inline code span (a URI, an id), however many backticks it holds."""
    text = " ".join(str(text).split("\n"))
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _matplotlib():
    import matplotlib

    matplotlib.use("Agg")  # batch jobs have no display
    import matplotlib.pyplot as plt

    return plt


@dataclass
class Report:
    title: str
    blocks: list[tuple[str, object]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    images: dict[str, bytes] = field(default_factory=dict)

    def text(self, markdown: str) -> None:
        self.blocks.append(("text", markdown))

    def heading(self, title: str) -> None:
        self.blocks.append(("heading", title))

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        self.blocks.append(("table", (list(headers), [list(r) for r in rows])))

    def metric(self, name: str, value: float) -> None:
        self.metrics[name] = float(value)

    def image(self, name: str, png: bytes, caption: str = "") -> None:
        self.images[f"{name}.png"] = png
        self.blocks.append(("image", (f"{name}.png", caption)))

    @contextmanager
    def figure(self, name: str, caption: str = "", size: tuple[float, float] = (8, 4), **subplots) -> Iterator[object]:
        """Draw on the axes this yields; the chart is added as a PNG."""
        plt = _matplotlib()
        fig, ax = plt.subplots(figsize=size, **subplots)
        try:
            yield ax
            fig.tight_layout()
            buffer = io.BytesIO()
            fig.savefig(buffer, format="png", dpi=110)
            self.image(name, buffer.getvalue(), caption)
        finally:
            plt.close(fig)

    # ---------------------------------------------------------------- rendering

    def to_markdown(self, embed_images: bool = False) -> str:
        lines = [f"# {escape(self.title)}", ""]
        for kind, value in self.blocks:
            if kind == "text":
                lines += [str(value), ""]
            elif kind == "heading":
                lines += [f"## {escape(value)}", ""]
            elif kind == "table":
                headers, rows = value
                lines.append("| " + " | ".join(_md_cell(h) for h in headers) + " |")
                lines.append("|" + "---|" * len(headers))
                lines += ["| " + " | ".join(_md_cell(c, _label(headers, row, i)) for i, c in enumerate(row)) + " |"
                          for row in rows]
                lines.append("")
            elif kind == "image":
                name, caption = value
                src = _data_uri(self.images[name]) if embed_images else name
                lines += [f"![{_md_cell(caption or name)}]({src})", ""]
                if caption:  # the alt text is not shown: the caption goes under the picture
                    lines += [f"*{_md_cell(caption)}*", ""]
        if self.metrics:
            lines += ["## Metrics", "", "| metric | value |", "|---|---|"]
            lines += [f"| {_md_cell(k)} | {_md_cell(v, k)} |" for k, v in self.metrics.items()]
        return "\n".join(lines).rstrip() + "\n"

    def to_html(self) -> str:
        """One self-contained page (images inlined) for the Kubeflow UI's HTML viewer: the
        Markdown rendered, raw HTML and unsafe links refused (see the module docstring)."""
        renderer = _markdown_renderer()
        body = renderer.render(self.to_markdown())
        # The pictures go in after rendering: parsing megabytes of base64 inside the Markdown
        # costs about half a second an image. Their names are ours, their bytes our own charts.
        for name, image in self.images.items():
            body = body.replace(f'src="{html.escape(renderer.normalizeLink(name))}"', f'src="{_data_uri(image)}"')
        style = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}"
                 "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
                 "text-align:left}img{max-width:100%}code{background:#f4f4f4;padding:0 3px}")
        return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>"
                f"<style>{style}</style></head><body>{body}</body></html>")

    def save(self, prefix: str) -> None:
        """Write report.md, report.html, metrics.json and every chart below `prefix`."""
        for name, png in self.images.items():
            storage.write_bytes(storage.join(prefix, name), png)
        storage.write_text(storage.join(prefix, "metrics.json"), json.dumps(self.metrics, indent=2, sort_keys=True))
        storage.write_text(storage.join(prefix, "report.html"), self.to_html())
        storage.write_text(storage.join(prefix, "report.md"), self.to_markdown())

    def to_kfp(self, markdown=None, html_output=None, metrics=None) -> None:
        """Fill Kubeflow output artifacts (any may be None): the UI renders them inline."""
        if markdown is not None:
            with open(markdown.path, "w") as f:
                f.write(self.to_markdown(embed_images=True))
        if html_output is not None:
            with open(html_output.path, "w") as f:
                f.write(self.to_html())
        if metrics is not None:
            for name, value in self.metrics.items():
                metrics.log_metric(name, value)


# Numbers that name something rather than count it print as written: seed 1000, year 1994,
# frame 1250, never "1,000". Known by the label they go by (see `_label`).
_NAMES_NOT_AMOUNTS = re.compile(r"(?<![a-z])(seed|year|id|frame|line|step|epoch|index|#)s?(?![a-z])", re.I)


def format_number(value: object, label: str = "") -> str:
    """A number for people: amounts with thousands separators ("10,000 movies"), names of
    things (seeds, years, ids: see `_NAMES_NOT_AMOUNTS`) plain, fractions to 4 significant
    digits without an exponent where that reads better ("0.1235", "117.5")."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return str(value)
    grouping = "" if _NAMES_NOT_AMOUNTS.search(label) else ","
    if isinstance(value, numbers.Integral) or (math.isfinite(value) and float(value).is_integer()):
        return f"{int(value):{grouping}d}"
    value = float(value)
    if not math.isfinite(value) or abs(value) < 1e-3:
        return f"{value:.4g}"
    if abs(value) >= 1000:
        return f"{value:{grouping}.0f}"
    return f"{value:.4g}"


def _label(headers: Sequence[object], row: Sequence[object], column: int) -> str:
    """What a table cell's number is: its column's header, and in a key/value table (text in
    the first column, like hyper-parameter tables) the row's key as well."""
    header = str(headers[column]) if column < len(headers) else ""
    key = row[0] if column and isinstance(row[0], str) else ""
    return f"{header} {key}"


def _md_cell(value: object, label: str = "") -> str:
    """A table cell (data: escaped), on one line."""
    text = format_number(value, label) if isinstance(value, numbers.Real) and not isinstance(value, bool) \
        else escape(value)
    return " ".join(text.split("\n"))


@functools.lru_cache(maxsize=1)
def _markdown_renderer():
    from markdown_it import MarkdownIt

    # CommonMark with GFM tables; "html": False shows raw HTML as text, and markdown-it's link
    # check drops javascript:, vbscript:, file: and non-image data: URLs.
    return MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])


def _data_uri(image: bytes) -> str:
    # Galleries embed GIF previews and JPEG frames beside PNG charts: name the real type.
    kind = "gif" if image[:4] == b"GIF8" else "jpeg" if image[:3] == b"\xff\xd8\xff" else "png"
    return f"data:image/{kind};base64," + base64.b64encode(image).decode()
