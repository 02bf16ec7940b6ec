"""`plots prep`: a movies CSV -> training text, a validation split, real titles, an EDA report.

Reads the IMDb export (`title, year, genre, description`), TMDB (`title, release_date,
genre, overview`), Kaggle TMDB 5000 (genres as JSON) or any CSV with a column mapping.
Output folder (written whole, `prep.json` last):

    train.txt, valid.txt   one example per line in the `corpus` format
    titles.txt             every real title in the input (for the curation filter)
    movies.jsonl           the cleaned rows with their split
    report/                EDA report (movies per year, genres, plot lengths)
    prep.json              counts and settings
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import re
from collections import Counter
from dataclasses import dataclass, field

from reelworks import storage
from reelworks.errors import ReelworksError
from reelworks.metrics import job_metrics
from reelworks.plots.corpus import format_example, normalize, unique_genres
from reelworks.reports import Report

log = logging.getLogger(__name__)

# Column names seen in the common exports, most specific first.
COLUMN_CANDIDATES = {
    "title": ["title", "original_title", "movie_title", "name", "primarytitle"],
    "plot": ["description", "overview", "plot", "summary", "synopsis", "storyline"],
    "genre": ["genre", "genres", "listed_in"],
    "year": ["year", "release_year", "startyear"],
    "date": ["release_date", "date", "released"],
    "id": ["id", "imdb_id", "imdbid", "tconst", "movie_id", "rank"],
}


@dataclass
class Movie:
    id: str
    title: str
    plot: str
    genres: list[str] = field(default_factory=list)
    year: int | None = None
    split: str = "train"


def decode(data: bytes, uri: str, encoding: str | None = None) -> str:
    """Text of a CSV: the given encoding, else UTF-8, else the one charset-normalizer detects."""
    if encoding:
        try:
            return data.decode(encoding)
        except (UnicodeDecodeError, LookupError) as exc:
            raise ReelworksError(f"cannot decode {uri} as {encoding}: {exc}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        from charset_normalizer import from_bytes

        best = from_bytes(data).best()
        if best is None:
            raise ReelworksError(f"cannot detect the text encoding of {uri}: pass --encoding") from None
        log.info("%s is not UTF-8; read it as %s", uri, best.encoding)
        return str(best)


def parse_columns(mapping: str | dict | None) -> dict[str, str]:
    """`"plot=Synopsis,title=Name"` -> {"plot": "Synopsis", "title": "Name"}."""
    if not mapping:
        return {}
    if isinstance(mapping, dict):
        items = mapping.items()
    else:
        items = []
        for part in mapping.split(","):
            key, sep, value = part.partition("=")
            if not sep:
                raise ReelworksError(f"malformed column mapping {part!r}: expected field=column")
            items.append((key, value))
    out = {}
    for key, value in items:
        key = key.strip().lower()
        if key not in COLUMN_CANDIDATES:
            raise ReelworksError(f"unknown field {key!r} in the column mapping; fields: {', '.join(COLUMN_CANDIDATES)}")
        out[key] = value.strip()
    return out


def _pick_columns(columns: list[str], mapping: dict[str, str], uri: str) -> dict[str, str]:
    lowered = {c.strip().lower(): c for c in columns}
    picked = {}
    for key, candidates in COLUMN_CANDIDATES.items():
        if key in mapping:
            if mapping[key] not in columns:
                raise ReelworksError(f"{uri} has no column {mapping[key]!r} (mapped to {key}); "
                                     f"columns: {', '.join(columns)}")
            picked[key] = mapping[key]
            continue
        found = next((lowered[c] for c in candidates if c in lowered), None)
        if found is not None:
            picked[key] = found
    for key in ("title", "plot"):
        if key not in picked:
            raise ReelworksError(f"{uri} has no usable {key} column (looked for {', '.join(COLUMN_CANDIDATES[key])}); "
                                 f"columns: {', '.join(columns)}; map one with --columns {key}=NAME")
    return picked


def parse_genres(raw: str) -> list[str]:
    """'Drama,Crime', 'Drama|Crime' or TMDB 5000's JSON list of {"id", "name"}."""
    raw = (raw or "").strip()
    if not raw:
        return []
    if raw.startswith("["):
        try:
            items = json.loads(raw)
            return unique_genres(normalize(i["name"] if isinstance(i, dict) else i) for i in items if i)
        except (ValueError, KeyError, TypeError):
            pass
    return unique_genres(g for g in (normalize(p) for p in re.split(r"[,|/]", raw)) if g)


def _year(row: dict, picked: dict) -> int | None:
    for key in ("year", "date"):
        if key in picked:
            match = re.search(r"\b(1[89]\d\d|20\d\d)\b", str(row[picked[key]]))
            if match:
                return int(match.group(1))
    return None


def is_validation(movie_id: str, fraction: float) -> bool:
    """A deterministic split by id: a movie stays on its side whatever else changes."""
    bucket = int(hashlib.sha256(f"plots-split:{movie_id}".encode()).hexdigest()[:8], 16) % 10_000
    return bucket < fraction * 10_000


def _keep_genre(movie_id: str, drop_fraction: float) -> bool:
    bucket = int(hashlib.sha256(f"plots-genre:{movie_id}".encode()).hexdigest()[:8], 16) % 10_000
    return bucket >= drop_fraction * 10_000


def read_movies(uri: str, columns: str | dict | None = None, encoding: str | None = None,
                max_rows: int | None = None) -> tuple[list[dict], dict[str, str]]:
    """The CSV's rows as dicts of strings, and which column holds which field."""
    import pandas as pd

    text = decode(storage.read_bytes(uri), uri, encoding)
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, nrows=max_rows or None,
                            on_bad_lines="warn")
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ReelworksError(f"cannot parse {uri} as CSV: {str(exc).splitlines()[0]}") from None
    picked = _pick_columns(list(frame.columns), parse_columns(columns), uri)
    return frame.to_dict("records"), picked


def clean(rows: list[dict], picked: dict[str, str], *, min_plot_words: int = 8, min_year: int | None = None,
          max_year: int | None = None, genres: list[str] | None = None,
          valid_fraction: float = 0.05) -> tuple[list[Movie], Counter]:
    """Normalise, drop short or empty plots, deduplicate, filter; returns kept movies and drop reasons."""
    wanted = {g.casefold() for g in genres or []}
    dropped: Counter = Counter()
    seen_plots, seen_titles, kept = set(), set(), []
    for number, row in enumerate(rows):
        title, plot = normalize(row[picked["title"]]), normalize(row[picked["plot"]])
        movie_id = normalize(row[picked["id"]]) if "id" in picked else ""
        movie_id = movie_id or hashlib.sha256(f"{title}\n{number}".encode()).hexdigest()[:12]
        year = _year(row, picked)
        movie_genres = parse_genres(row[picked["genre"]]) if "genre" in picked else []
        if not title:
            dropped["no_title"] += 1
        elif len(plot.split()) < min_plot_words:
            dropped["short_plot"] += 1
        elif (min_year and (year is None or year < min_year)) or (max_year and (year is None or year > max_year)):
            dropped["year"] += 1
        elif wanted and not wanted & {g.casefold() for g in movie_genres}:
            dropped["genre"] += 1
        elif plot.casefold() in seen_plots or (title.casefold(), year) in seen_titles:
            dropped["duplicate"] += 1
        else:
            seen_plots.add(plot.casefold())
            seen_titles.add((title.casefold(), year))
            split = "valid" if is_validation(movie_id, valid_fraction) else "train"
            kept.append(Movie(movie_id, title, plot, movie_genres, year, split))
    return kept, dropped


def prep(input_uri: str, output_uri: str, *, columns: str | dict | None = None, encoding: str | None = None,
         min_plot_words: int = 8, min_year: int | None = None, max_year: int | None = None,
         genres: list[str] | None = None, valid_fraction: float = 0.05, genre_dropout: float = 0.25,
         max_rows: int | None = None) -> Report:
    """Clean a movies CSV into training text at `output_uri`; returns the EDA report."""
    if not 0 < valid_fraction < 1:
        raise ReelworksError(f"valid_fraction must be between 0 and 1, got {valid_fraction}")
    with job_metrics("plots_prep") as metrics:
        rows, picked = read_movies(input_uri, columns, encoding, max_rows)
        movies, dropped = clean(rows, picked, min_plot_words=min_plot_words, min_year=min_year,
                                max_year=max_year, genres=genres, valid_fraction=valid_fraction)
        metrics.items.inc(len(rows))
        for reason, count in dropped.items():
            metrics.drop(reason, count)  # skipped on purpose: not a failure
        if not movies:
            raise ReelworksError(f"no movies left in {input_uri} after cleaning and filters "
                                 f"({len(rows)} rows read; dropped: {dict(dropped) or 'none'})")
        train = [m for m in movies if m.split == "train"]
        valid = [m for m in movies if m.split == "valid"]
        if not train or not valid:
            raise ReelworksError(f"{len(movies)} movies are too few for a train/validation split "
                                 f"({len(train)} train, {len(valid)} validation): use more rows")
        metrics.gauge("reelworks_plots_movies_kept", "Movies kept after cleaning").set(len(movies))

        def lines(split: list[Movie]) -> str:
            return "".join(format_example(m.title, m.plot, m.genres if _keep_genre(m.id, genre_dropout) else None)
                           + "\n" for m in split)

        titles = sorted({normalize(r[picked["title"]]) for r in rows} - {""})
        report = eda_report(movies, dropped, len(rows), input_uri)
        summary = {"input": str(input_uri), "columns": picked, "rows": len(rows), "kept": len(movies),
                   "train": len(train), "valid": len(valid), "dropped": dict(dropped), "titles": len(titles),
                   "valid_fraction": valid_fraction, "genre_dropout": genre_dropout}
        with storage.output_dir(output_uri) as out:
            (out / "train.txt").write_text(lines(train), encoding="utf-8")
            (out / "valid.txt").write_text(lines(valid), encoding="utf-8")
            (out / "titles.txt").write_text("\n".join(titles) + "\n", encoding="utf-8")
            with open(out / "movies.jsonl", "w", encoding="utf-8") as f:
                for m in movies:
                    f.write(json.dumps(m.__dict__, ensure_ascii=False) + "\n")
            report.save(str(out / "report"))
        # The manifest goes last: its presence says the folder is complete (also on S3).
        storage.write_text(storage.join(output_uri, "prep.json"), json.dumps(summary, indent=2))
        log.info("prep: %d rows -> %d movies (%d train, %d validation); dropped %s",
                 len(rows), len(movies), len(train), len(valid), dict(dropped))
        return report


def movies_per_year(movies: list[Movie]) -> dict[int, int]:
    """Movies per release year, for every year from the first to the last (0 where none)."""
    years = Counter(m.year for m in movies if m.year)
    return {year: years[year] for year in range(min(years), max(years) + 1)} if years else {}


def eda_report(movies: list[Movie], dropped: Counter, rows: int, input_uri: str) -> Report:
    report = Report("Plot data")
    report.text(f"{rows:,} rows read from `{input_uri}`; {len(movies):,} movies kept "
                f"({sum(m.split == 'valid' for m in movies):,} held out for validation).")
    if dropped:
        report.table(["dropped because", "rows"], sorted(dropped.items(), key=lambda kv: -kv[1]))
    per_year = movies_per_year(movies)
    if per_year:
        with report.figure("movies_per_year", "Movies per year (one bar per year)") as ax:
            from matplotlib.ticker import MaxNLocator

            # Gaps between the bars show each year apart; years without movies keep their (empty) slot.
            ax.bar(list(per_year), list(per_year.values()), width=0.8, color="#4c72b0")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel("year")
            ax.set_ylabel("movies")
    genre_counts = Counter(g for m in movies for g in m.genres)
    if genre_counts:
        top = genre_counts.most_common(20)
        report.heading("Genres")
        report.table(["genre", "movies"], top)
        with report.figure("genres", "Movies per genre (top 20)") as ax:
            ax.barh([g for g, _ in reversed(top)], [c for _, c in reversed(top)], color="#55a868")
            ax.set_xlabel("movies")
    lengths = [len(m.plot.split()) for m in movies]
    with report.figure("plot_lengths", "Plot length in words") as ax:
        ax.hist(lengths, bins=40, color="#c44e52")
        ax.set_xlabel("words")
        ax.set_ylabel("movies")
    report.metric("rows_read", rows)
    report.metric("movies_kept", len(movies))
    report.metric("plot_words_median", sorted(lengths)[len(lengths) // 2])
    return report


def read_lines(data_uri: str, name: str) -> list[str]:
    """One file of a prep output folder, checked, as lines."""
    if not storage.exists(storage.join(data_uri, "prep.json")):
        raise ReelworksError(f"{data_uri} is not a complete `plots prep` output (no prep.json)")
    return [line for line in storage.read_text(storage.join(data_uri, name)).splitlines() if line.strip()]
