"""`posters prep`: labels + posters -> verified, resized posters in TFRecord shards.

Reads MovieGenre.csv (ISO-8859-1; `imdbId, Imdb Link, Title, IMDB Score, Genre, Poster`
with poster URLs) or the one-hot shape of `posters_2000.csv` (`imdbId, Genre, Poster` file
names, one 0/1 column per genre). Posters come from their URLs (fetched with bounded
concurrency, timeouts, retries and resume) or from a local/S3 folder. Output folder:

    dataset.json        the manifest, written last: classes, image size, splits, rejections
    posters.csv         one row per kept poster: imdbId, title, year, genres, split
    tfrecords/{train,validation,test}-NNNNN-of-NNNNN.tfrecord
    report/             report.md/.html, genre counts chart, a sample gallery
"""
from __future__ import annotations

import io
import json
import logging
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from reelworks import storage
from reelworks.errors import ReelworksError
from reelworks.metrics import job_metrics
from reelworks.posters import fetch as fetch_lib
from reelworks.media import png_bytes
from reelworks.posters.images import PosterRejected, decode_poster, size_for_ratio
from reelworks.progress import track
from reelworks.reports import Report
from reelworks.settings import cache_dir

log = logging.getLogger(__name__)

MANIFEST = "dataset.json"
FORMAT = "reelworks.posters/1"
SPLITS = ("train", "validation", "test")
# The original project's genre groups (most frequent first).
GENRE_GROUPS = {
    "3": ["Comedy", "Drama", "Action"],
    "7": ["Comedy", "Drama", "Action", "Animation", "Romance", "Adventure", "Horror"],
    "14": ["Comedy", "Drama", "Action", "Animation", "Romance", "Adventure", "Horror",
           "Sci-Fi", "Crime", "Mystery", "Thriller", "War", "Family", "Western"],
}
TITLE_YEAR = re.compile(r"^(?P<title>.*?)\s*\((?P<year>\d{4})\)\s*$")


def split_of(imdb_id: int) -> str:
    """5/7 train, 1/7 validation, 1/7 test, by imdbId (test = imdbId % 7 == 0, as the original)."""
    rest = imdb_id % 7
    return "test" if rest == 0 else "validation" if rest == 1 else "train"


def parse_title(value) -> tuple[str, int | None]:
    """`"The Matrix (1999)"` -> ("The Matrix", 1999); no year -> (title, None)."""
    text = "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value).strip()
    match = TITLE_YEAR.match(text)
    if match:
        return match["title"], int(match["year"])
    return text, None


def read_labels(uri: str):
    """The label CSV as a DataFrame (UTF-8, else ISO-8859-1 as MovieGenre.csv is)."""
    import pandas as pd

    raw = storage.read_bytes(uri)
    for encoding in ("utf-8", "ISO-8859-1"):
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    try:
        table = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ReelworksError(f"{uri} is not a readable CSV: {str(exc).splitlines()[0]}") from None
    table.columns = [c.strip() for c in table.columns]
    if "imdbId" not in table.columns:
        raise ReelworksError(f"{uri} has no imdbId column (columns: {', '.join(table.columns[:8])})")
    if "Genre" not in table.columns and len(table.columns) < 4:
        raise ReelworksError(f"{uri} has neither a Genre column nor one-hot genre columns")
    return table


@dataclass
class Movie:
    imdb_id: int
    title: str
    year: int | None
    genres: list[str]
    poster: str


def movies_from_table(table) -> tuple[list[Movie], Counter]:
    """Rows -> movies, counting rows that cannot be used."""
    skipped: Counter = Counter()
    onehot = [c for c in table.columns if c not in ("imdbId", "Imdb Link", "Title", "IMDB Score", "Genre", "Poster")
              and set(table[c].unique()) <= {"0", "1", ""}]
    movies, seen = [], set()
    for row in table.to_dict("records"):
        try:
            imdb_id = int(str(row["imdbId"]).strip())
        except ValueError:
            skipped["bad_id"] += 1
            continue
        if imdb_id in seen:
            skipped["duplicate"] += 1
            continue
        seen.add(imdb_id)
        if str(row.get("Genre", "")).strip():
            genres = [g.strip() for g in str(row["Genre"]).split("|") if g.strip()]
        else:
            genres = [c for c in onehot if row.get(c) == "1"]
        poster = str(row.get("Poster", "")).strip().strip('"')
        if not genres:
            skipped["no_genre"] += 1
            continue
        if not poster:
            skipped["no_poster"] += 1
            continue
        title, year = parse_title(row.get("Title"))
        movies.append(Movie(imdb_id, title or f"imdb {imdb_id}", year, genres, poster))
    return movies, skipped


def choose_genres(spec: str, movies: list[Movie], min_count: int = 1) -> tuple[list[str], list[str]]:
    """(classes, unknown names). `spec`: 3, 7 or 14 (the original's groups), `all`
    (every genre with at least `min_count` movies, most frequent first), or a comma list."""
    counts = Counter(g for m in movies for g in m.genres)
    spec = str(spec).strip()
    if spec.lower() == "all":
        wanted = [g for g, c in counts.most_common() if c >= min_count]
    elif spec in GENRE_GROUPS:
        wanted = GENRE_GROUPS[spec]
    else:
        wanted = [g.strip() for g in spec.split(",") if g.strip()]
    unknown = [g for g in wanted if counts[g] == 0]
    classes = [g for g in wanted if counts[g] > 0]
    if len(classes) < 2:
        raise ReelworksError(f"genres {spec!r}: fewer than 2 genres found in the labels "
                             f"(unknown: {', '.join(unknown) or 'none'}; known: {', '.join(list(counts)[:20])})")
    return classes, unknown


def prep(labels: str, output: str, *, images: str | None = None, genres: str = "all", ratio: float = 30,
         min_year: int | None = None, max_year: int | None = None, shards: int = 4, workers: int = 8,
         timeout: float = 10.0, retries: int = 2, limit: int | None = None) -> dict:
    """Build the prepared dataset at `output`; returns the manifest (plus its `report`).

    `images`: the folder holding posters named in the CSV (default: `images/` next to the
    CSV), or, when the CSV has URLs, where fetched posters are kept (default: the cache),
    so a second run fetches only what is missing. Rejected posters are counted by reason;
    the step fails only when no poster is usable.
    """
    width, height = size_for_ratio(ratio)
    with job_metrics("posters_prep") as metrics:
        movies, skipped = movies_from_table(read_labels(labels))
        rows_read = len(movies) + sum(skipped.values())
        if not movies:
            raise ReelworksError(f"no usable rows in {labels} ({dict(skipped) or 'empty file'})")
        if min_year is not None or max_year is not None:
            lo, hi = min_year or 0, max_year or 9999
            kept = [m for m in movies if m.year is not None and lo <= m.year <= hi]
            skipped["no_year"] += sum(1 for m in movies if m.year is None)
            skipped["outside_years"] += sum(1 for m in movies if m.year is not None and not lo <= m.year <= hi)
            movies = kept
        classes, unknown = choose_genres(genres, movies)
        if unknown:
            log.warning("genres not found in the labels, ignored: %s", ", ".join(unknown))
        chosen = set(classes)
        before = len(movies)
        movies = [m for m in movies if chosen & set(m.genres)]
        skipped["no_selected_genre"] += before - len(movies)
        movies.sort(key=lambda m: m.imdb_id)
        if limit:
            movies = movies[:limit]
        if not movies:
            raise ReelworksError(f"no movie left after the year and genre filters ({dict(skipped)})")

        folder = _poster_folder(labels, images, movies)
        items = [fetch_lib.FetchItem(key=f"{m.imdb_id}.jpg" if fetch_lib.is_url(m.poster) else m.poster,
                                     source=m.poster) for m in movies]
        fetched = fetch_lib.fetch_all(items, folder, workers=workers, timeout=timeout, retries=retries)
        rejected: Counter = Counter(fetched.reasons)

        def decode(pair):
            movie, item = pair
            data = fetched.data.get(item.key)
            if data is None:  # already counted among the fetch failures
                return movie, None, fetched.failures.get(item.key, "missing"), False
            try:
                return movie, decode_poster(data, (width, height)), None, False
            except PosterRejected as exc:
                return movie, None, exc.reason, True

        kept: list[tuple[Movie, np.ndarray]] = []
        with ThreadPoolExecutor(max_workers=max(1, min(workers, 4))) as pool:
            for movie, pixels, reason, new in track(pool.map(decode, zip(movies, items)), "verifying posters",
                                                    total=len(movies), unit="poster"):
                if pixels is None:
                    if new:
                        rejected[reason] += 1
                    metrics.drop(reason)
                    continue
                kept.append((movie, pixels))
                metrics.items.inc()
        if not kept:
            raise ReelworksError(f"no usable poster among {len(movies)} ({dict(rejected)})")
        manifest, report = _write(output, kept, classes, (height, width), ratio, shards, genres,
                          rows_read=rows_read, skipped=skipped, rejected=rejected, unknown=unknown,
                          fetched=fetched, source={"labels": labels, "images": folder})
        metrics.gauge("reelworks_posters_kept", "Posters kept by prep").set(len(kept))
        metrics.gauge("reelworks_posters_rejected", "Posters rejected by prep").set(sum(rejected.values()))
    return {**manifest, "report": report}


def _poster_folder(labels: str, images: str | None, movies: list[Movie]) -> str:
    if images:
        return images
    if any(fetch_lib.is_url(m.poster) for m in movies):
        return str(cache_dir() / "posters" / "fetched")
    parent = labels.rstrip("/").rsplit("/", 1)[0] if "/" in labels else "."
    return storage.join(parent, "images")


def _write(output: str, kept, classes, shape, ratio, shards, genres_spec, *, rows_read, skipped, rejected,
           unknown, fetched, source) -> dict:
    import pandas as pd

    from reelworks.imageclf import data as data_lib

    index = {c: i for i, c in enumerate(classes)}
    by_split = {s: [(m, p) for m, p in kept if split_of(m.imdb_id) == s] for s in SPLITS}
    manifest = {
        "format": FORMAT, "classes": classes, "genres": genres_spec, "ratio": ratio,
        "image": {"height": shape[0], "width": shape[1], "channels": 3},
        "rows_read": rows_read, "kept": len(kept), "skipped_rows": {k: v for k, v in skipped.items() if v},
        "rejected": dict(rejected),
        "unknown_genres": unknown, "fetched": fetched.fetched, "reused": fetched.reused, "source": source,
        "years": _year_range([m for m, _ in kept]), "splits": {},
    }
    with storage.output_dir(output) as tmp:
        rows = []
        for split, pairs in by_split.items():
            labels = np.zeros((len(pairs), len(classes)), np.float32)
            for row, (movie, _) in enumerate(pairs):
                for genre in movie.genres:
                    if genre in index:
                        labels[row, index[genre]] = 1.0
                rows.append({"imdbId": movie.imdb_id, "title": movie.title, "year": movie.year or "",
                             "genres": "|".join(g for g in movie.genres if g in index), "split": split})
            # PNG level 1: lossless like 6, 4% larger and about twice as fast (6 was 24 s of
            # the 42 s that 4,000 posters at ratio 70 took to prepare).
            names = data_lib.write_tfrecords([png_bytes(p, compress_level=1) for _, p in pairs], labels,
                                             [str(m.imdb_id) for m, _ in pairs], tmp / "tfrecords", split,
                                             shards=shards) if pairs else []
            manifest["splits"][split] = {"count": len(pairs), "files": [f"tfrecords/{n}" for n in names],
                                         "positives": labels.sum(axis=0).astype(int).tolist()}
            if not pairs:
                log.warning("the %s split is empty", split)
        pd.DataFrame(rows).to_csv(tmp / "posters.csv", index=False)
        report = _report(manifest, kept, classes)
        report.save(str(tmp / "report"))
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return manifest, report


def _year_range(movies: list[Movie]) -> list[int] | None:
    years = [m.year for m in movies if m.year]
    return [min(years), max(years)] if years else None


def _report(manifest: dict, kept, classes) -> Report:
    from reelworks.imageclf.evaluation import gallery_png

    report = Report("Posters: prepared data")
    splits = manifest["splits"]
    report.text(f"{manifest['rows_read']:,} label rows read, {manifest['kept']:,} posters kept at "
                f"{manifest['image']['width']}x{manifest['image']['height']} (ratio {manifest['ratio']}%), "
                f"{len(classes)} genres. Split by imdbId: test = imdbId % 7 == 0, validation = imdbId % 7 == 1.")
    report.table(["split", "posters"], [[s, splits[s]["count"]] for s in SPLITS])
    problems = [[f"row: {k}", v] for k, v in manifest["skipped_rows"].items() if v] + \
               [[f"poster: {k}", v] for k, v in manifest["rejected"].items() if v]
    if problems:
        report.heading("Skipped and rejected")
        report.table(["reason", "count"], problems)
    if manifest["unknown_genres"]:
        report.text("Genres asked for but not in the labels: " + ", ".join(manifest["unknown_genres"]))
    with report.figure("genres", "Posters per genre and split", size=(10, 4)) as ax:
        bottom = np.zeros(len(classes))
        for split in SPLITS:
            counts = np.asarray(splits[split]["positives"] or [0] * len(classes), float)
            ax.bar(classes, counts, bottom=bottom, label=split)
            bottom += counts
        ax.tick_params(axis="x", rotation=45)
        ax.legend()
    sample = kept[:: max(1, len(kept) // 18)][:18]
    report.image("sample", gallery_png([p for _, p in sample],
                                       [f"{m.title[:22]}\n{', '.join(m.genres[:3])}" for m, _ in sample]),
                 "A sample of prepared posters")
    for split in SPLITS:
        report.metric(f"{split}_posters", splits[split]["count"])
    report.metric("rejected", sum(manifest["rejected"].values()))
    return report


def load_manifest(data: str) -> dict:
    """The manifest of a prepared dataset; refuses folders that are not (or not yet) one."""
    uri = storage.join(data, MANIFEST)
    if not storage.exists(uri):
        raise ReelworksError(f"{data} is not a prepared posters dataset (no {MANIFEST}): run `posters prep` first")
    manifest = json.loads(storage.read_text(uri))
    if manifest.get("format") != FORMAT:
        raise ReelworksError(f"{uri}: unknown format {manifest.get('format')!r}")
    return manifest


def local_split_files(data: str, manifest: dict, split: str) -> list[str]:
    """Local paths of a split's shards (S3 datasets are synced into the cache first)."""
    root = storage.cached(data)
    return [storage.inside(str(root), f, f"{split} shard in {MANIFEST}") for f in manifest["splits"][split]["files"]]
