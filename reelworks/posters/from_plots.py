"""`posters from-plots`: a poster for every queued plot that has none yet.

For each item: a visual prompt from its title, plot and genres (the LLM when one is
configured, else a fixed template; cut to CLIP's 77 tokens) and a negative prompt; a 2:3
portrait rendered by a Stable Diffusion pipeline (`reelworks.diffusion`: "tiny", a Hub id, a
folder or an s3:// prefix), seeded per item; the title set onto it with PIL; optionally the
genre classifier's reading of the finished poster.

Every prompt is written before the pipeline is loaded (the LLM's answers a few at a time), so
the GPU never waits on the LLM; an item whose LLM call fails gets the template prompt (its
record says why, `reelworks_posters_template_fallbacks_total` counts it) and the run goes on.
Sizes are the model's trained portrait shapes: SD 1.5 512x768, SDXL its 832x1216 bucket.
Rendering goes through `diffusion.text_to_image`; each finished batch is titled, saved beside
the queue (`<queue folder>/posters/<id>.png`) and its URI (s3://, or an absolute path: the
tweeter may run from another directory) written into the item's `image` field with a
compare-and-swap (`queue.set_images`), so plots appended meanwhile are kept.
"""
from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import PurePosixPath

from reelworks import diffusion, storage
from reelworks.errors import ReelworksError
from reelworks.media import png_bytes
from reelworks.metrics import job_metrics
from reelworks.reports import Report
from reelworks.tweeter.queue import POSTERS_FOLDER, QueueItem, read_queue, set_images

log = logging.getLogger(__name__)

NEGATIVE_PROMPT = ("text, letters, words, title, typography, watermark, signature, logo, frame, border, "
                   "blurry, low quality, jpeg artifacts, deformed, disfigured, extra fingers, bad anatomy")
# What a genre looks like on a poster: the template's style words.
GENRE_STYLE = {
    "action": "explosions, dynamic pose, motion blur, high contrast",
    "adventure": "vast landscape, heroic silhouette, golden hour",
    "animation": "vibrant animated style, bold shapes, bright colors",
    "comedy": "bright saturated colors, playful expressions, sunny",
    "crime": "neon-lit rainy street, noir shadows, gritty",
    "documentary": "photojournalism, natural light, candid",
    "drama": "moody intimate portrait, soft window light",
    "family": "warm colors, cheerful, storybook",
    "fantasy": "magical glowing light, mythical creatures, epic castle",
    "horror": "dark eerie fog, desaturated, ominous silhouette, dread",
    "music": "stage lights, concert crowd, vivid color",
    "mystery": "shadowy figure, fog, lantern light, suspense",
    "romance": "warm soft light, couple silhouette, sunset, tender",
    "sci-fi": "futuristic city, spaceships, neon glow, vast scale",
    "science fiction": "futuristic city, spaceships, neon glow, vast scale",
    "history": "period costumes, candlelight, sepia tones, grand interiors",
    "thriller": "tense close-up, harsh shadows, cold palette",
    "war": "smoke, battlefield, muted earth tones, gritty",
    "western": "desert, dusty sunset, lone rider, wide vista",
}
DEFAULT_STYLE = "cinematic lighting, dramatic composition"
LLM_SYSTEM = ("You write image prompts for a text-to-image model that paints movie posters. Answer with JSON: "
              "`prompt` is one visual scene for the poster (subjects, setting, lighting, colors, style), "
              "at most 77 CLIP tokens (about 50 words), no text or letters on the image, no title; "
              "`negative_prompt` lists what to avoid, at most 20 words.")
# The lengths bound what a schema-enforcing server can generate (well inside max_tokens below);
# the prompts are then cut to the text encoder's 77 tokens with its own tokenizer (fit_prompt).
PROMPT_SCHEMA = {"type": "object", "properties": {"prompt": {"type": "string", "minLength": 1, "maxLength": 600},
                                                  "negative_prompt": {"type": "string", "maxLength": 300}},
                 "required": ["prompt", "negative_prompt"]}
GALLERY_WIDTH = 192
LLM_THREADS = 4  # prompts asked for at once: servers batch parallel requests, and none waits on the GPU
# SDXL was fine-tuned on ~1 megapixel aspect-ratio buckets (the SDXL paper); this one is the
# nearest to 2:3. Sizes off the buckets (1024x1536) leave what it learned: doubled subjects.
SDXL_PORTRAIT_BUCKET = (832, 1216)
SDXL_NATIVE = 1024


def template_prompt(item: QueueItem) -> tuple[str, str]:
    """(prompt, negative prompt) from the item alone: its genres' style, its first sentence."""
    genres = [g for g in item.genres if g.strip()]
    styles = [GENRE_STYLE[g.strip().casefold()] for g in genres if g.strip().casefold() in GENRE_STYLE]
    scene = item.plot.strip().split(". ")[0].rstrip(".")
    scene = " ".join(scene.split()[:30])
    kind = f"{' '.join(g.lower() for g in genres[:2])} movie poster" if genres else "movie poster"
    prompt = (f"{kind} for {item.title.strip()}, {scene}, {', '.join(styles) or DEFAULT_STYLE}, "
              "cinematic, highly detailed, portrait composition")
    return prompt, NEGATIVE_PROMPT


def llm_prompt(client, item: QueueItem) -> tuple[str, str]:
    genres = ", ".join(item.genres) or "unknown"
    answer = client.json([{"role": "system", "content": LLM_SYSTEM},
                          {"role": "user", "content": f"Title: {item.title}\nGenres: {genres}\nPlot: {item.plot}"}],
                         PROMPT_SCHEMA, name="poster_prompt", max_tokens=256)
    return str(answer["prompt"]).strip(), str(answer["negative_prompt"]).strip() or NEGATIVE_PROMPT


def poster_prompts(items: list[QueueItem], client, metrics) -> list[dict]:
    """Each item's {"prompt", "negative_prompt", "prompt_source"} (plus "prompt_fallback", the
    reason, when the LLM failed for it and the template stepped in), all before any rendering.
    The first LLM call goes alone (it settles the server's model and JSON mode), the rest
    LLM_THREADS at a time; an endpoint that cannot be reached is not asked again."""
    from reelworks.llm import LLMError

    fallbacks = metrics.counter("reelworks_posters_template_fallbacks_total",
                                "Posters whose prompt came from the template because the LLM failed for them")
    unreachable: list[str] = []

    def one(item: QueueItem) -> dict:
        if client is not None and not unreachable:
            try:
                prompt, negative = llm_prompt(client, item)
                return {"prompt": prompt, "negative_prompt": negative, "prompt_source": "llm"}
            except LLMError as exc:
                reason = str(exc)
                if getattr(exc, "unreachable", False):
                    unreachable.append(reason)
                log.warning("poster prompt for %s (%r): the LLM failed (%s); using the template prompt",
                            item.id, item.title[:60], reason)
        elif client is not None:
            reason = f"not asked: the LLM endpoint was unreachable ({unreachable[0]})"
        prompt, negative = template_prompt(item)
        record = {"prompt": prompt, "negative_prompt": negative, "prompt_source": "template"}
        if client is not None:
            record["prompt_fallback"] = reason
            fallbacks.inc()
        return record

    if client is None or not items:
        return [one(item) for item in items]
    first = one(items[0])
    with ThreadPoolExecutor(LLM_THREADS) as pool:
        return [first, *pool.map(one, items[1:])]


def llm_client():
    """The configured LLM client, or None (no endpoint configured, or no `reelworks.llm`)."""
    try:
        from reelworks.llm import LLMClient
    except ImportError:
        return None
    return LLMClient.from_settings()


def item_seed(item: QueueItem, seed: int) -> int:
    """Each item's own seed: its stable id mixed with the run's seed, whatever its batch."""
    return (int(item.id[:8], 16) ^ (seed * 0x9E3779B1)) & 0x7FFFFFFF


def beside(queue: str, *parts: str) -> str:
    """A URI in the queue's folder."""
    loc = storage.parse(queue)
    parent = str(PurePosixPath(loc.key).parent)
    base = f"s3://{loc.bucket}/{parent}" if loc.is_s3 else parent
    if loc.is_s3 and parent == ".":
        base = f"s3://{loc.bucket}"
    return storage.join(base, *parts)


def portrait_size(pipe) -> tuple[int, int]:
    """(width, height) of a portrait the pipeline was trained to paint (tiny sd: 64x96)."""
    native = int(pipe.unet.config.sample_size) * int(pipe.vae_scale_factor)
    return portrait_size_of(native, sdxl=hasattr(pipe, "text_encoder_2"))


def portrait_size_of(native: int, sdxl: bool = False) -> tuple[int, int]:
    """A 2:3-ish portrait from a model's native square side: SDXL's trained bucket (832x1216 at
    its native 1024, scaled for smaller test models), else the native width and 1.5 times it
    (SD 1.5: 512x768), both multiples of 8."""
    if sdxl:
        width, height = (max(8, round(side * native / SDXL_NATIVE / 8) * 8) for side in SDXL_PORTRAIT_BUCKET)
        return width, height
    width = max(8, native // 8 * 8)
    return width, round(width * 3 / 2 / 8) * 8


def posters_from_plots(queue: str, output: str, *, model: str = "tiny", kind: str = "sd",
                       classifier: str | None = None, limit: int | None = None, steps: int = 25,
                       guidance: float = 7.5, seed: int = 0, batch_size: int | str = "auto",
                       device: str | None = None, missing_ok: bool = False) -> dict:
    """Render, title and attach posters for queued plots without an image; returns the summary
    (also written to `output`/posters.json, with posters.jsonl, raw renders and the report).
    `missing_ok`: a queue that does not exist is an empty one."""
    from reelworks.posters.title_card import set_title

    if kind not in ("sd", "sdxl"):
        raise ReelworksError(f"posters are still images: --kind must be sd or sdxl, not {kind!r}")
    if limit is not None and limit < 1:
        raise ReelworksError(f"--limit must be at least 1, got {limit}")
    if steps < 1:
        raise ReelworksError(f"--steps must be at least 1, got {steps}")
    if not missing_ok and not storage.exists(queue):  # a pipeline whose curation kept nothing has none
        raise ReelworksError(f"no queue at {queue}")
    with job_metrics("posters_from_plots") as metrics:
        read = read_queue(queue, missing_ok=missing_ok)
        no_plot = sum("empty title or plot" in reason for _, reason in read.bad_lines)
        if no_plot:
            metrics.drop("no_plot", no_plot)
        if len(read.bad_lines) > no_plot:
            metrics.drop("bad_line", len(read.bad_lines) - no_plot)
        with_image = [item for item in read.items if item.image]
        todo = [item for item in read.items if not item.image][:limit]
        client = llm_client()
        source = "llm" if client is not None else "template"
        records: list[dict] = []
        started = time.time()
        if todo:
            # Prompts first: the pipeline (and its GPU) is not even loaded while the LLM writes.
            prompts = poster_prompts(todo, client, metrics)
            pipe = diffusion.load(model, kind, device=device)
            width, height = portrait_size(pipe)
            for item, prompt in zip(todo, prompts):
                prompt["prompt"] = diffusion.fit_prompt(pipe.tokenizer, prompt["prompt"])
                prompt["negative_prompt"] = diffusion.fit_prompt(pipe.tokenizer, prompt["negative_prompt"])
                records.append({"id": item.id, "title": item.title, "plot": item.plot, "genres": item.genres,
                                **prompt, "seed": item_seed(item, seed), "model": model, "steps": steps,
                                "size": [width, height]})

            def attach(indices: list[int], images: list) -> None:
                """Title, save and attach a finished batch now: a crash later keeps what is done."""
                from PIL import Image

                for index, pixels in zip(indices, images):
                    record, raw = records[index], Image.fromarray(pixels)
                    record["image"] = storage.absolute(beside(queue, POSTERS_FOLDER, f"{record['id']}.png"))
                    record["raw"] = storage.join(output, "raw", f"{record['id']}.png")
                    storage.write_bytes(record["raw"], png_bytes(raw))
                    storage.write_bytes(record["image"], png_bytes(set_title(raw, record["title"])))
                set_images(queue, {records[i]["id"]: records[i]["image"] for i in indices})
                metrics.items.inc(len(indices))

            # The seed recorded is the item's own: a poster the safety checker blacked out is
            # drawn again from seed + 1, + 2, ... (the same every run).
            diffusion.text_to_image(pipe, [r["prompt"] for r in records], [r["seed"] for r in records],
                                    negative_prompts=[r["negative_prompt"] for r in records], height=height,
                                    width=width, steps=steps, guidance=guidance, batch_size=batch_size,
                                    on_batch=attach, desc="posters")
        elapsed = time.time() - started
        if classifier and records:
            from reelworks.posters.predict import predict

            for record, result in zip(records, predict(classifier, [r["image"] for r in records], top=3)):
                record["classifier_genres"] = result.get("predicted", [])
                record["classifier_top"] = result.get("top", [])
        if client is not None and hasattr(client, "save_transcript"):
            client.save_transcript(storage.join(output, "llm_transcript.json"))
        fallbacks = sum(r["prompt_source"] == "template" for r in records) if client is not None else 0
        summary = {"queue": queue, "model": model, "kind": kind, "rendered": len(records),
                   "already_with_image": len(with_image), "dropped": {"no_plot": no_plot,
                                                                      "bad_line": len(read.bad_lines) - no_plot},
                   "left_for_later": len([i for i in read.items if not i.image]) - len(todo),
                   "prompt_source": source, "template_fallbacks": fallbacks, "classifier": classifier or "",
                   "seconds": round(elapsed, 2)}
        report = poster_report(summary, records)
        storage.write_text(storage.join(output, "posters.jsonl"),
                           "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        report.save(storage.join(output, "report"))
        storage.write_text(storage.join(output, "posters.json"), json.dumps(summary, indent=2))  # last
        metrics.gauge("reelworks_posters_rendered_per_second", "Posters rendered per second").set(
            len(records) / elapsed if records and elapsed > 0 else 0)
        log.info("from-plots: %d poster(s) rendered (%s prompts), %d item(s) already had one, %d without a plot",
                 len(records), source, len(with_image), no_plot)
        summary["records"] = records
        summary["report"] = report
        return summary


def poster_report(summary: dict, records: list[dict], gallery: int = 24) -> Report:
    report = Report("Posters from plots")
    prompts = ("an LLM" if summary["prompt_source"] == "llm"
               else "the built-in template (no LLM endpoint configured: REELWORKS_LLM_BASE_URL)")
    if summary.get("template_fallbacks"):
        prompts += f" ({summary['template_fallbacks']} from the template: the LLM failed for them, see posters.jsonl)"
    report.text(f"{summary['rendered']} poster(s) rendered with {summary['model']} ({summary['kind']}), prompts by "
                f"{prompts}; {summary['already_with_image']} queued plot(s) already had an image, "
                f"{summary['dropped']['no_plot']} had no plot (skipped).")
    report.metric("posters_rendered", summary["rendered"])
    report.metric("posters_seconds", summary["seconds"])
    if not records:
        return report
    classified = any("classifier_genres" in r for r in records)
    report.heading("Gallery")
    shown = records[:gallery]
    report.image("gallery", _contact_sheet(shown, classified),
                 f"{len(shown)} of {len(records)} posters: requested genres"
                 + (" / the classifier's genres" if classified else ""))
    rows = []
    for record in shown:
        row = [record["title"], record["plot"], ", ".join(record["genres"]) or "-"]
        if classified:
            row.append(", ".join(record.get("classifier_top", [])) or "-")
        rows.append(row + [record["prompt"]])
    headers = ["title", "plot", "requested genres"] + (["classifier genres"] if classified else []) + ["prompt"]
    report.table(headers, rows)
    return report


def _contact_sheet(records: list[dict], classified: bool, columns: int = 6) -> bytes:
    """The posters in a grid, each with its requested (and classified) genres beneath."""
    from reelworks.media import contact_sheet, open_image

    captions = [", ".join(r["genres"]) or "-" for r in records]
    if classified:
        captions = [f"{c}\nclf: {', '.join(r.get('classifier_genres', [])) or '-'}" for c, r in zip(captions, records)]
    posters = [open_image(r["image"]).convert("RGB") for r in records]
    return png_bytes(contact_sheet(posters, captions, columns=columns, cell=GALLERY_WIDTH, gap=8))
