"""Step 3: one render per keyframe, through the same walker as the interpolation pass at
position 0, so prompts and seeds can be judged (and fixed in prompts.csv) before the
expensive pass, and each keyframe is exactly the first frame of its segment.

Writes `keyframes/NNN.png`, a contact sheet in `report/`, and `keyframes.json` (names and
sha256) last.
"""
from __future__ import annotations

import hashlib
import io
import json

import numpy as np

from reelworks import storage
from reelworks.musicvideo.interpolate import Walker, load_walker, png_bytes
from reelworks.musicvideo.timing import load_timeline, scene_label


def contact_sheet(images: list[np.ndarray], captions: list[str], columns: int = 4, cell: int = 192) -> bytes:
    """A PNG grid: each image scaled to `cell` px wide with its caption under it."""
    from PIL import Image, ImageDraw

    rows = (len(images) + columns - 1) // columns
    h0, w0 = images[0].shape[:2]
    cell_h = int(round(cell * h0 / w0))
    caption_h = 34
    sheet = Image.new("RGB", (columns * cell, rows * (cell_h + caption_h)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (image, caption) in enumerate(zip(images, captions)):
        x, y = (i % columns) * cell, (i // columns) * (cell_h + caption_h)
        sheet.paste(Image.fromarray(image).resize((cell, cell_h), Image.NEAREST), (x, y))
        words, lines = caption.split(), [""]
        for word in words:
            if len(lines[-1]) + len(word) + 1 > cell // 6 and lines[-1]:
                lines.append("")
            lines[-1] = (lines[-1] + " " + word).strip()
        draw.text((x + 3, y + cell_h + 2), "\n".join(lines[:2]), fill="black")
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG")
    return buffer.getvalue()


def keyframes(timeline: str, output: str, *, model: str = "tiny", steps: int = 4, guidance: float = 7.5,
              height: int = 64, width: int = 64, batch_size: int | str = "auto", device: str | None = None,
              embeddings: str = "lerp", offload: bool = False, slicing: bool = False,
              walker: Walker | None = None) -> dict:
    from reelworks.metrics import job_metrics
    from reelworks.reports import Report

    tl = load_timeline(timeline)
    with job_metrics("musicvideo_keyframes") as m:
        walker = walker or load_walker(tl, model, steps=steps, guidance=guidance, height=height, width=width,
                                       batch_size=batch_size, device=device, embeddings=embeddings,
                                       offload=offload, slicing=slicing)
        n = len(tl["keyframes"])
        images = walker.render_all([(seg["a"], seg["b"], 0.0) for seg in tl["segments"]])
        m.items.inc(n)
        report = Report("Music video keyframes")
        report.text(f"{n} keyframes, {walker.width}x{walker.height}, {walker.steps} steps, guidance "
                    f"{walker.guidance:g}, model `{model}`, batch size {walker.batch_size}. Fix a prompt or seed in "
                    "prompts.csv and re-plan with `--plan-from` before the interpolation pass.")
        captions = [f"{scene_label(kf)}: {kf['lyric']}" for kf in tl["keyframes"]]
        report.image("contact_sheet", contact_sheet(images, captions), "One render per keyframe (line: lyric)")
        report.table(["line", "frame", "lyric", "prompt", "seed"],
                     [[scene_label(kf), kf["frame"], kf["lyric"], kf["prompt"], kf["seed"]] for kf in tl["keyframes"]])
        report.metric("keyframes", n)
        with storage.output_dir(output) as tmp:
            entries = []
            for kf, image in zip(tl["keyframes"], images):
                data = png_bytes(image)
                name = f"keyframes/{kf['index']:03d}.png"
                storage.write_bytes(storage.join(str(tmp), name), data)
                entries.append({"index": kf["index"], "frame": kf["frame"], "name": name,
                                "sha256": hashlib.sha256(data).hexdigest()})
            report.save(storage.join(str(tmp), "report"))
            storage.write_text(storage.join(str(tmp), "keyframes.json"), json.dumps(
                {"model": model, "steps": walker.steps, "batch_size": walker.batch_size, "keyframes": entries},
                indent=1))
    return {"keyframes": entries, "images": images, "report": report}
