"""Step 3: one render per keyframe, through the same walker as the interpolation pass at
position 0, so prompts and seeds can be judged before the expensive pass, and each keyframe is
exactly the first frame of its segment.

Approval: the contact sheet (`report/contact_sheet.png`, the step's report) shows each
keyframe with its number. A keyframe that is not right is re-rolled here (`--reroll`, the
pipeline's `reroll`), with a new seed or a new prompt, and the walk goes on from this step's
`timeline.json`: the timing's timeline with the re-rolls applied. Interpolate caches frames by
content, so only the two segments next to a re-rolled keyframe are rendered again.

Re-roll syntax, one or more separated by ";" (or the option repeated):

    N                   keyframe N (0-based, as on the contact sheet) with the next seed (seed + 1)
    N:seed=S            ... with seed S
    N:prompt=TEXT       ... with another prompt (the rest of the spec: it may hold ":" but not ";")
    N:seed=S:prompt=TEXT

Writes `keyframes/NNN.png`, a contact sheet in `report/`, `timeline.json`, and
`keyframes.json` (names and sha256) last.
"""
from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass

from reelworks import storage
from reelworks.errors import ReelworksError
from reelworks.media import contact_sheet, png_bytes
from reelworks.musicvideo.interpolate import Walker, load_walker
from reelworks.musicvideo.timing import load_timeline, scene_label

REROLL_SPEC = re.compile(r"(?P<index>\d+)(?::seed=(?P<seed>\d+))?(?::prompt=(?P<prompt>.*))?", re.DOTALL)


@dataclass(frozen=True)
class Reroll:
    """Keyframe `index` made again: with `seed` (None: the next one) and/or `prompt`."""
    index: int
    seed: int | None = None
    prompt: str | None = None


def parse_rerolls(specs: str | list[str] | None) -> list[Reroll]:
    """`--reroll` values (each may hold several specs separated by ";") as Rerolls; one clear
    line for a spec that does not parse or names a keyframe twice."""
    if isinstance(specs, str) or specs is None:
        specs = [specs or ""]
    rerolls: dict[int, Reroll] = {}
    for spec in (part.strip() for value in specs for part in value.split(";")):
        if not spec:
            continue
        found = REROLL_SPEC.fullmatch(spec)
        if not found or (found["prompt"] is not None and not found["prompt"].strip()):
            raise ReelworksError(f"re-roll {spec!r} is not N, N:seed=S, N:prompt=TEXT or N:seed=S:prompt=TEXT")
        seed = int(found["seed"]) if found["seed"] is not None else None
        if seed is not None and seed >= 2**32:
            raise ReelworksError(f"re-roll {spec!r}: the seed must be below 2^32")
        index = int(found["index"])
        if index in rerolls:
            raise ReelworksError(f"keyframe {index} is re-rolled twice ({spec!r})")
        rerolls[index] = Reroll(index, seed, found["prompt"].strip() if found["prompt"] is not None else None)
    return list(rerolls.values())


def apply_rerolls(timeline: dict, rerolls: list[Reroll]) -> dict:
    """A copy of `timeline` with the re-rolled keyframes' seeds and prompts (each keeps what it
    had as `rerolled_from`); a prompt is checked against CLIP's 77 tokens."""
    from reelworks.musicvideo.plan import MAX_TOKENS, token_counter

    out = copy.deepcopy(timeline)
    keyframes = out["keyframes"]
    count_tokens = token_counter() if any(r.prompt for r in rerolls) else None
    for reroll in rerolls:
        if not 0 <= reroll.index < len(keyframes):
            raise ReelworksError(f"re-roll {reroll.index}: there are keyframes 0-{len(keyframes) - 1}")
        kf = keyframes[reroll.index]
        before = {"seed": kf["seed"], "prompt": kf["prompt"]}
        if reroll.prompt is not None:
            if count_tokens(reroll.prompt) > MAX_TOKENS:
                raise ReelworksError(f"re-roll {reroll.index}: the prompt is over CLIP's {MAX_TOKENS} tokens")
            kf["prompt"] = reroll.prompt
        if reroll.seed is not None:
            kf["seed"] = reroll.seed
        elif reroll.prompt is None:
            kf["seed"] = (int(kf["seed"]) + 1) % 2**32
        kf["rerolled_from"] = before
    return out


def keyframes(timeline: str, output: str, *, model: str = "tiny", kind: str = "sd", steps: int = 4,
              guidance: float = 7.5, height: int = 64, width: int = 64, batch_size: int | str = "auto",
              device: str | None = None, embeddings: str = "lerp", offload: bool = False, slicing: bool = False,
              reroll: str | list[str] | None = None, walker: Walker | None = None) -> dict:
    from reelworks.metrics import job_metrics
    from reelworks.reports import Report

    rerolls = parse_rerolls(reroll)
    tl = apply_rerolls(load_timeline(timeline), rerolls)
    with job_metrics("musicvideo_keyframes") as m:
        walker = walker or load_walker(tl, model, kind=kind, steps=steps, guidance=guidance, height=height,
                                       width=width, batch_size=batch_size, device=device, embeddings=embeddings,
                                       offload=offload, slicing=slicing)
        walker.check(tl, timeline)
        n = len(tl["keyframes"])
        images = walker.render_all([(seg["a"], seg["b"], 0.0) for seg in tl["segments"]])
        m.items.inc(n)
        report = Report("Music video keyframes")
        captions = [f"#{kf['index']} {scene_label(kf)}: {kf['lyric']}" + ("\n(re-rolled)" * ("rerolled_from" in kf))
                    for kf in tl["keyframes"]]
        # The sheet first: the one thing to judge before the walk.
        report.image("contact_sheet", png_bytes(contact_sheet(images, captions, cell=192)),
                     "One render per keyframe (#number line: lyric)")
        report.text(f"{n} keyframes, {walker.width}x{walker.height}, {walker.steps} steps, guidance "
                    f"{walker.guidance:g}, model `{model}` ({walker.kind}), batch size {walker.batch_size}. To "
                    "change one before the walk: re-roll it (`--reroll N`, `N:seed=S` or `N:prompt=TEXT`; the pipeline's "
                    "`reroll` parameter) and walk this step's timeline.json with the same work folder: only "
                    "the two segments next to it are rendered again.")
        if rerolls:
            report.text("Re-rolled: " + "; ".join(
                f"#{r.index} (seed {tl['keyframes'][r.index]['rerolled_from']['seed']} -> "
                f"{tl['keyframes'][r.index]['seed']}" + (", new prompt" if r.prompt is not None else "") + ")"
                for r in rerolls) + ".")
        report.table(["#", "line", "frame", "lyric", "prompt", "seed"],
                     [[kf["index"], scene_label(kf), kf["frame"], kf["lyric"], kf["prompt"], kf["seed"]]
                      for kf in tl["keyframes"]])
        report.metric("keyframes", n)
        report.metric("rerolled", len(rerolls))
        with storage.output_dir(output) as tmp:
            entries = []
            for kf, image in zip(tl["keyframes"], images):
                data = png_bytes(image, compress_level=1)
                name = f"keyframes/{kf['index']:03d}.png"
                storage.write_bytes(storage.join(str(tmp), name), data)
                entries.append({"index": kf["index"], "frame": kf["frame"], "name": name,
                                "sha256": hashlib.sha256(data).hexdigest()})
            report.save(storage.join(str(tmp), "report"))
            storage.write_text(storage.join(str(tmp), "timeline.json"), json.dumps(tl, indent=1))
            storage.write_text(storage.join(str(tmp), "keyframes.json"), json.dumps(
                {"model": model, "kind": walker.kind, "steps": walker.steps, "batch_size": walker.batch_size,
                 "rerolled": [r.index for r in rerolls], "keyframes": entries}, indent=1))
    return {"keyframes": entries, "images": images, "report": report, "timeline": tl}
