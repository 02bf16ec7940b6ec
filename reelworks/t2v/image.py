"""`t2v image`: prompts -> Stable Diffusion images (the first frame of each clip).

Prompts come from an `embed` output folder (its prompts.csv), any CSV with a description /
prompt column, or one `--prompt`. Each prompt gets its own seed (`seed + index`): the same
seed gives the same image whatever the batch. A prompt longer than CLIP's 77 tokens is cut at
a word boundary with a warning (`diffusion.fit_prompt`). Width and height are multiples of 8.

Output folder (written whole, `images.json` last): `images/<id>.png`, `contact_sheet.png`.
"""
from __future__ import annotations

import json
import logging

from reelworks import diffusion, storage
from reelworks.media import contact_sheet, png_bytes
from reelworks.errors import ReelworksError
from reelworks.metrics import job_metrics

log = logging.getLogger(__name__)

KINDS = ("sd", "sdxl")
NEGATIVE_PROMPT = "blurry, low quality, deformed, text, watermark"


def image(output: str, *, prompts: str | None = None, prompt: str | None = None, model: str = "tiny",
          kind: str = "sd", seed: int = 0, negative_prompt: str = NEGATIVE_PROMPT, guidance: float = 7.5,
          steps: int | None = None, width: int = 512, height: int = 512, batch_size: int | str = "auto",
          device: str | None = None, limit: int | None = None) -> dict:
    """Render one image per prompt; returns the manifest written as images.json."""
    from reelworks.t2v.embed import read_prompts

    if kind not in KINDS:
        raise ReelworksError(f"t2v image renders with {' or '.join(KINDS)}, not {kind!r}")
    if width % 8 or height % 8 or width < 8 or height < 8:
        raise ReelworksError(f"width and height must be positive multiples of 8 (got {width}x{height})")
    if prompts:
        entries = read_prompts(prompts)
    elif prompt:
        entries = [{"id": "p000", "prompt": prompt}]
    else:
        raise ReelworksError("nothing to render: give --prompts CSV_URI or --prompt TEXT")
    entries = entries[:limit] if limit else entries
    steps = steps or (2 if model == "tiny" else 30)
    with job_metrics("t2v_image") as m:
        pipe = diffusion.load(model, kind, device=device)
        items = []
        for i, entry in enumerate(entries):
            if not entry["prompt"].strip():
                m.drop("empty_prompt")
                continue
            items.append({**entry, "seed": seed + i, "text": diffusion.fit_prompt(pipe.tokenizer, entry["prompt"])})
        if not items:
            raise ReelworksError("every prompt is empty")
        rendered = diffusion.text_to_image(pipe, [x["text"] for x in items], [x["seed"] for x in items],
                                           negative_prompts=negative_prompt, height=height, width=width,
                                           steps=steps, guidance=guidance, batch_size=batch_size,
                                           desc="rendering images")
        records = []
        with storage.output_dir(output) as tmp:
            (tmp / "images").mkdir()
            for item, array in zip(items, rendered):
                name = f"images/{item['id']}.png"
                (tmp / name).write_bytes(png_bytes(array))
                records.append({"id": item["id"], "prompt": item["prompt"], "seed": item["seed"], "image": name,
                                "truncated": item["text"] != item["prompt"],
                                **{k: item[k] for k in ("imdbid", "videoid", "nearest") if k in item}})
                m.items.inc()
            (tmp / "contact_sheet.png").write_bytes(png_bytes(contact_sheet(rendered, columns=8)))
            manifest = {"model": model, "kind": kind, "width": width, "height": height, "steps": steps,
                        "guidance": guidance, "negative_prompt": negative_prompt, "images": records}
            (tmp / "images.json").write_text(json.dumps(manifest, indent=2))
    log.info("%d image(s) at %dx%d -> %s", len(records), width, height, output)
    return manifest
