"""Step 4: the walk. Every frame on the grid rendered by Stable Diffusion from text embeddings
lerped (or slerped) and seed noise slerped between its segment's two keyframes.

Each frame is a function of its segment's two prompts and seeds and its position alone:
- the keyframes' text embeddings are encoded once (`pipe.encode_prompt`) and each keyframe's
  noise drawn once from its own seed on the CPU (the same noise on any device);
- a batch's embeddings and noise are mixed on the device in one operation each, then the stock
  diffusers pipeline renders the batch from `prompt_embeds`/`negative_prompt_embeds`/`latents`;
- batches are padded to the fixed batch size, so a frame's arithmetic never depends on which
  frames share its batch: a keyframe render (position 0) is bit-identical to the first frame
  of its segment, and a rerun reproduces every frame exactly (at the same batch size);
- each frame gets its own generator, seeded with its segment's first keyframe's seed, for the
  noise a stochastic scheduler (Euler ancestral, DDPM) adds at each step: the same along a
  segment (no flicker from frame to frame), the same on every run;
- a frame the safety checker blacks out is made again from the next seeds (`diffusion.run_batched`);
  a CUDA out-of-memory halves the batch and renders the same frames again, never dropping one;
- SDXL: the pooled embeddings are mixed like the others; a NaN frame (fp16 VAE overflow)
  stops with one line instead of becoming a black frame.

Frames are cached by content: a frame is stored as `segments/<key>/<position>.png`, the key
hashing all its segment's pixels depend on (`segment_keys`: both keyframes' prompts and seeds,
the positions, model, size, steps, guidance, scheduler...). A rerun into the same folder with
an edited plan or a re-rolled keyframe renders only the segments whose key changed (those
touching the changed scene) and takes every other frame from the cache (`segments/<key>/done/`
records, written after the frames, say which are there; each is checked against its sha256).

Work goes in chunks of grid frames. A chunk's new PNGs are written (atomically, by a writer
thread while the device renders the next batch), then its manifest `chunks/NNNNN.json`
(frame -> PNG name and sha256) last, only once every frame of the chunk is there.
`interpolate.json` (written first) names the run's fingerprint: every setting that changes
pixels, the chunk size included. A restarted job skips chunks whose manifest carries that
fingerprint, so a pre-empted GPU loses at most one chunk, and render reads only those
manifests, never an older run's; `shard`/`shards` split the chunks over several workers (the
pipeline's ParallelFor). Each job writes `interpolate-shard-NNN.json`: `frames_rendered`,
`frames_reused`, and both per segment.
"""
from __future__ import annotations

import hashlib
import json
import logging
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from reelworks import media, storage
from reelworks.errors import ReelworksError
from reelworks.musicvideo.timing import frame_table, load_timeline

log = logging.getLogger(__name__)

DEFAULT_CHUNK = 16
CPU_AUTO_BATCH = 8
RUN_FILE = "interpolate.json"
# Bump when the way a frame is made changes (2: per-frame generators, safety re-rolls;
# 3: SDXL conditioning, frames stored by segment key).
WALK_VERSION = 3
# The text conditioning `encode_prompt` returns, by the name the pipeline's call takes it under.
SD_EMBEDDINGS = ("prompt_embeds", "negative_prompt_embeds")
SDXL_EMBEDDINGS = ("prompt_embeds", "negative_prompt_embeds", "pooled_prompt_embeds", "negative_pooled_prompt_embeds")
# What of a keyframe changes the pixels of the segments either side of it.
KEYFRAME_FIELDS = ("prompt", "negative_prompt", "seed")
WALK_KINDS = ("sd", "sdxl")
SEGMENTS = "segments"  # the frame cache: segments/<segment key>/<position>.png
KEY_CHARS = 24  # of a segment key's sha256 hex digest (96 bits)


# --------------------------------------------------------------------------- interpolation math


def lerp(a, b, t):
    """a + t (b - a) per row; `t` of shape (batch,), broadcast over the rest. Exactly `a` at t=0."""
    import torch

    t = t.reshape(-1, *([1] * (a.dim() - 1))).to(a.dtype)
    return torch.lerp(a, b, t)


def slerp(a, b, t, dot_threshold: float = 0.9995):
    """Spherical interpolation per row (float32 inside): the norm stays near the endpoints'
    (Gaussian noise stays Gaussian-sized, where a lerp would shrink it by up to 1/sqrt(2)).
    Exactly `a` at t=0; nearly parallel rows fall back to lerp."""
    import torch

    dtype = a.dtype
    a32, b32 = a.float(), b.float()
    flat_a, flat_b = a32.flatten(1), b32.flatten(1)
    dot = (flat_a * flat_b).sum(1) / (flat_a.norm(dim=1) * flat_b.norm(dim=1)).clamp_min(1e-12)
    dot = dot.clamp(-1, 1)
    theta = torch.acos(dot)
    t = t.float().to(a.device)
    sin_theta = torch.sin(theta)
    s0 = torch.sin((1 - t) * theta) / sin_theta
    s1 = torch.sin(t * theta) / sin_theta
    parallel = dot.abs() > dot_threshold
    s0 = torch.where(parallel, 1 - t, s0)
    s1 = torch.where(parallel, t, s1)
    shape = (-1, *([1] * (a.dim() - 1)))
    return (s0.reshape(shape) * a32 + s1.reshape(shape) * b32).to(dtype)


def seed_noise(seed: int, shape: tuple[int, ...]):
    """A keyframe's initial noise: drawn on the CPU from its seed alone (device-independent)."""
    import torch

    generator = torch.Generator("cpu").manual_seed(int(seed))
    return torch.randn(shape, generator=generator, dtype=torch.float32)


# --------------------------------------------------------------------------- the walker


class Walker:
    """Renders (segment start keyframe, end keyframe, position) triples in fixed-size batches.

    SD 1.x/2.x and SDXL alike: with SDXL the pooled text embeddings are mixed like the
    per-token ones, and the size conditioning (`original_size`/`target_size`, from which the
    pipeline makes its time ids) is the render size, the same for every frame of the walk."""

    def __init__(self, pipe, keyframes: list[dict], *, steps: int, guidance: float, height: int, width: int,
                 batch_size: int, embeddings: str = "lerp"):
        import torch

        if embeddings not in ("lerp", "slerp"):
            raise ReelworksError(f"--embeddings must be lerp or slerp, not {embeddings!r}")
        if height % 8 or width % 8:
            raise ReelworksError(f"height and width must be multiples of 8, got {width}x{height}")
        self.pipe, self.steps, self.guidance = pipe, steps, guidance
        self.height, self.width, self.batch_size, self.embeddings = height, width, batch_size, embeddings
        self.device = pipe._execution_device
        self.dtype = pipe.unet.dtype
        self.sdxl = getattr(pipe, "text_encoder_2", None) is not None
        self.ends = [keyframe_identity(k) for k in keyframes]
        with torch.no_grad():
            encoded = pipe.encode_prompt([k["prompt"] for k in keyframes], device=self.device,
                                         num_images_per_prompt=1, do_classifier_free_guidance=True,
                                         negative_prompt=[k["negative_prompt"] for k in keyframes])
        names = SDXL_EMBEDDINGS if self.sdxl else SD_EMBEDDINGS
        # The text conditioning per keyframe, by the pipeline's own argument names.
        self.embeds = dict(zip(names, encoded))
        self.seeds = [int(k["seed"]) for k in keyframes]
        self.noise_shape = (1, pipe.unet.config.in_channels, height // pipe.vae_scale_factor,
                            width // pipe.vae_scale_factor)
        self.noise = torch.cat([seed_noise(seed, self.noise_shape) for seed in self.seeds]).to(self.device)

    def inputs(self, items: list[tuple]) -> dict:
        """The pipeline's conditioning arguments for a batch (every text embedding, and
        `latents`), mixed on the device.

        An item is (keyframe a, keyframe b, position) or, made again after a safety-checker
        hit, (a, b, position, reroll): its noise then comes from both seeds + reroll."""
        import torch

        a = torch.tensor([i[0] for i in items], device=self.device)
        b = torch.tensor([i[1] for i in items], device=self.device)
        t = torch.tensor([i[2] for i in items], dtype=torch.float32, device=self.device)
        mix = slerp if self.embeddings == "slerp" else lerp
        out = {name: mix(embeds[a], embeds[b], t) for name, embeds in self.embeds.items()}
        noise_a, noise_b = self.noise[a].clone(), self.noise[b].clone()
        for row, item in enumerate(items):
            if _reroll(item):
                noise_a[row] = self._noise(item[0], _reroll(item))[0]
                noise_b[row] = self._noise(item[1], _reroll(item))[0]
        out["latents"] = slerp(noise_a, noise_b, t).to(self.dtype)
        if self.sdxl:
            # SDXL's time ids: the render size as both the "original" and the target size, no crop.
            size = (self.height, self.width)
            out.update(original_size=size, target_size=size, crops_coords_top_left=(0, 0))
        return out

    @property
    def kind(self) -> str:
        return "sdxl" if self.sdxl else "sd"

    def check(self, timeline: dict, where: str) -> None:
        """One clear line when this walker encoded other keyframes than `timeline`'s."""
        if self.ends != [keyframe_identity(kf) for kf in timeline["keyframes"]]:
            raise ReelworksError(f"the walker was made for other keyframes than {where}'s")

    def _noise(self, keyframe: int, reroll: int):
        return seed_noise(self.seeds[keyframe] + reroll, self.noise_shape).to(self.device)

    def frame_seed(self, item: tuple) -> int:
        """The seed of the frame's own generator: its segment's first keyframe's (+ its reroll)."""
        return self.seeds[item[0]] + _reroll(item)

    def render_checked(self, items: list[tuple]) -> list[tuple[np.ndarray, bool]]:
        """(HxWx3 uint8 frame, flagged by the safety checker) for `items`; the batch is padded
        to `batch_size`."""
        import torch

        from reelworks import diffusion

        if not items:
            return []
        n = len(items)
        padded = list(items) + [items[-1]] * max(0, self.batch_size - n)
        try:
            with torch.no_grad():
                output = self.pipe(**self.inputs(padded),
                                   generator=diffusion.generators([self.frame_seed(i) for i in padded]),
                                   num_inference_steps=self.steps, guidance_scale=self.guidance,
                                   height=self.height, width=self.width, output_type="np")
        except torch.cuda.OutOfMemoryError:
            # Padding follows the batch size down (run_batched retries with half the items).
            self.batch_size = max(1, self.batch_size // 2)
            raise
        images = np.asarray(output.images[:n])
        for item, image in zip(items, images):
            if not np.isfinite(image).all():  # to_uint8 would make it a black frame
                raise ReelworksError(
                    f"the frame between keyframes {item[0]} and {item[1]} (position {item[2]:.3f}) came out NaN in "
                    f"{str(self.dtype).removeprefix('torch.')}: the VAE overflows; use an fp16-safe VAE (SDXL: "
                    "madebyollin/sdxl-vae-fp16-fix), let diffusion.load upcast it, or render in float32")
        frames = list(media.to_uint8(images))
        return list(zip(frames, diffusion.nsfw_flags(output, n)))

    def render(self, items: list[tuple]) -> list[np.ndarray]:
        """HxWx3 uint8 frames for `items` (one batch, as they come: see `render_all`)."""
        return [frame for frame, _ in self.render_checked(items)]

    def render_all(self, items: list[tuple]) -> list[np.ndarray]:
        """One frame per item, in order: batched, backing off on out-of-memory, and a frame the
        safety checker blacked out made again from the next seeds (bounded)."""
        from reelworks import diffusion

        checked = diffusion.run_batched(self.render_checked, items, batch_size=self.batch_size,
                                        flagged=lambda result: result[1],
                                        reroll=lambda item, attempt: (*item[:3], attempt))
        return [frame for frame, _ in checked]


def _reroll(item: tuple) -> int:
    return int(item[3]) if len(item) > 3 else 0


def keyframe_identity(keyframe: dict) -> dict:
    """What of a keyframe its segments' pixels depend on."""
    return {k: keyframe[k] for k in KEYFRAME_FIELDS}


def resolve_batch_size(batch_size: int | str, device: str) -> int:
    from reelworks import diffusion

    return diffusion.batch_size_of(batch_size, auto=diffusion.AUTO_BATCH if str(device).startswith("cuda")
                                   else CPU_AUTO_BATCH)


def load_walker(timeline: dict, model: str, *, kind: str = "sd", steps: int, guidance: float, height: int,
                width: int, batch_size: int | str = "auto", device: str | None = None, embeddings: str = "lerp",
                offload: bool = False, slicing: bool = False) -> Walker:
    from reelworks import diffusion

    if kind not in WALK_KINDS:
        raise ReelworksError(f"the walk runs on {' or '.join(WALK_KINDS)} pipelines, not {kind!r}")
    device, _ = diffusion.pick_device(device, kind)
    pipe = diffusion.load(model, kind, device=device, offload=offload, slicing=slicing)
    return Walker(pipe, timeline["keyframes"], steps=steps, guidance=guidance, height=height, width=width,
                  batch_size=resolve_batch_size(batch_size, device), embeddings=embeddings)


def frame_name(key: str, position: int) -> str:
    """A frame's PNG in the cache: its segment's key and its place in the segment."""
    return f"{SEGMENTS}/{key}/{position:05d}.png"


def chunk_name(chunk: int) -> str:
    return f"chunks/{chunk:05d}.json"


def stats_name(shard: int) -> str:
    return f"interpolate-shard-{shard:03d}.json"


def fingerprint(timeline: dict, settings: dict) -> str:
    """What a chunk's frames depend on: a manifest with another fingerprint is stale."""
    keyframes = [keyframe_identity(kf) for kf in timeline["keyframes"]]
    segments = [{k: s[k] for k in ("a", "b", "first_frame", "positions")} for s in timeline["segments"]]
    blob = json.dumps({"keyframes": keyframes, "segments": segments, **settings}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def segment_keys(timeline: dict, pixel_settings: dict) -> list[str]:
    """Per segment, the hash of all its frames' pixels depend on: its two keyframes' prompts and
    seeds, its positions and the render settings. Not the chunk size, the shard, where the
    segment sits on the grid or the other scenes: an unchanged segment of an edited plan keeps
    its key, and its cached frames (a batch is padded to the batch size, so a frame does not
    depend on which frames share its batch either)."""
    keys = []
    for segment in timeline["segments"]:
        ends = [keyframe_identity(timeline["keyframes"][segment[end]]) for end in ("a", "b")]
        blob = json.dumps({"ends": ends, "positions": segment["positions"], **pixel_settings}, sort_keys=True)
        keys.append(hashlib.sha256(blob.encode()).hexdigest()[:KEY_CHARS])
    return keys


def cached_frames(output: str, keys) -> dict[tuple[str, int], str]:
    """(segment key, position) -> sha256 of each frame that a finished chunk of any run left
    in the cache below `output` (its `done/` records, written after the frames)."""
    found = {}
    for key in sorted(set(keys)):
        folder = storage.join(output, SEGMENTS, key, "done")
        for name in storage.list_keys(folder):
            try:
                record = json.loads(storage.read_text(storage.join(folder, name)))
            except (ValueError, ReelworksError):
                continue
            for entry in record.get("frames", []):
                found[(key, int(entry["position"]))] = entry["sha256"]
    return found


def interpolate(timeline: str, output: str, *, model: str = "tiny", kind: str = "sd", steps: int = 4,
                guidance: float = 7.5, height: int = 64, width: int = 64, batch_size: int | str = "auto",
                chunk: int = DEFAULT_CHUNK, shard: int = 0, shards: int = 1, device: str | None = None,
                embeddings: str = "lerp", offload: bool = False, slicing: bool = False,
                walker: Walker | None = None) -> dict:
    """Render every frame of the grid (this shard's chunks) below `output`, taking the frames
    an earlier run made with the same segment key from the cache there; returns a summary with
    `rendered` and `skipped` chunk numbers and `frames_rendered`/`frames_reused` (also written
    to `interpolate-shard-NNN.json`, with the counts per segment)."""
    from reelworks.metrics import job_metrics
    from reelworks.progress import track

    tl = load_timeline(timeline)
    if chunk < 1:
        raise ReelworksError(f"--chunk must be at least 1, got {chunk}")
    if not 0 <= shard < shards:
        raise ReelworksError(f"--shard must be in [0, {shards}), got {shard}")
    table = frame_table(tl)
    segments = {s["index"]: s for s in tl["segments"]}
    n_chunks = (len(table) + chunk - 1) // chunk
    mine = [c for c in range(n_chunks) if c % shards == shard]
    with job_metrics("musicvideo_interpolate") as m:
        walker = walker or load_walker(tl, model, kind=kind, steps=steps, guidance=guidance, height=height,
                                       width=width, batch_size=batch_size, device=device, embeddings=embeddings,
                                       offload=offload, slicing=slicing)
        walker.check(tl, timeline)
        pixels = {"model": model, "kind": walker.kind, "steps": walker.steps,
                  "guidance": walker.guidance, "height": walker.height, "width": walker.width,
                  "batch_size": walker.batch_size, "embeddings": walker.embeddings, "dtype": str(walker.dtype),
                  "device": str(walker.device).split(":")[0], "scheduler": scheduler_settings(walker.pipe),
                  "slicing": slicing, "walk_version": WALK_VERSION}
        settings = {**pixels, "chunk": chunk}
        fp = fingerprint(tl, settings)
        keys = segment_keys(tl, pixels)
        # First: from here on this folder's frames are this run's (render reads no other manifest).
        storage.write_text(storage.join(output, RUN_FILE), json.dumps(
            {"fingerprint": fp, "settings": settings, "chunks": n_chunks, "shards": shards, "segment_keys": keys},
            indent=1))
        done = set(storage.list_keys(storage.join(output, "chunks")))
        cache = cached_frames(output, {keys[s] for c in mine for _, s, _ in table[c * chunk:(c + 1) * chunk]})
        counts: dict[int, dict] = {}

        def count(segment: int, what: str) -> None:  # "rendered" or "reused", per segment
            entry = counts.setdefault(segment, {"index": segment, "key": keys[segment], "rendered": 0, "reused": 0})
            entry[what] += 1

        rendered, skipped = [], []
        with ThreadPoolExecutor(4) as writers:
            for c in track(mine, "interpolate chunks", total=len(mine), unit="chunk"):
                rows = table[c * chunk:(c + 1) * chunk]
                if f"{c:05d}.json" in done and _manifest_matches(output, c, fp):
                    skipped.append(c)
                    m.drop("chunk_already_done", n=len(rows))
                    for _, s, _ in rows:
                        count(s, "reused")
                    continue
                # (frame, segment, position index, position) of each frame; those in the cache
                # (and still matching their sha256) are taken from it.
                places = [(frame, s, frame - segments[s]["first_frame"], p) for frame, s, p in rows]
                hits = {frame: writers.submit(_cached_entry, output, frame, keys[s], j, cache.get((keys[s], j)))
                        for frame, s, j, _ in places if (keys[s], j) in cache}
                entries = {frame: entry for frame, future in hits.items() if (entry := future.result())}
                todo = [place for place in places if place[0] not in entries]
                pending, start = [], 0
                while start < len(todo):
                    # One batch at a time, so the writers save it while the device renders the next;
                    # an out-of-memory back-off halves walker.batch_size, and render_all still
                    # returns every frame it was given.
                    batch = todo[start:start + walker.batch_size]
                    frames = walker.render_all([(segments[s]["a"], segments[s]["b"], p) for _, s, _, p in batch])
                    for (frame, s, j, _), image in zip(batch, frames):
                        pending.append(writers.submit(_write_frame, output, frame, keys[s], j, image))
                    start += len(batch)
                new = [future.result() for future in pending]
                entries.update((entry["frame"], entry) for entry in new)
                if len(entries) != len(rows):  # never a manifest for a chunk with a frame missing
                    raise ReelworksError(f"chunk {c}: {len(entries)} of {len(rows)} frames were rendered")
                _write_cache_records(output, new)
                # The manifest last: a chunk with one is complete.
                storage.write_text(storage.join(output, chunk_name(c)), json.dumps(
                    {"chunk": c, "fingerprint": fp, "frames": [entries[frame] for frame, _, _ in rows]}, indent=1))
                rendered.append(c)
                made = {entry["frame"] for entry in new}
                for frame, s, _, _ in places:
                    count(s, "rendered" if frame in made else "reused")
                m.items.inc(len(new))
                if len(rows) > len(new):
                    m.drop("frame_cached", n=len(rows) - len(new))
        frames_rendered = sum(e["rendered"] for e in counts.values())
        frames_reused = sum(e["reused"] for e in counts.values())
        m.gauge("reelworks_musicvideo_chunks_skipped", "Chunks a restarted job found finished").set(len(skipped))
        m.gauge("reelworks_musicvideo_frames_rendered", "Frames this interpolate job rendered").set(frames_rendered)
        m.gauge("reelworks_musicvideo_frames_reused",
                "Frames this interpolate job took from the cache (same segment key) or a finished chunk"
                ).set(frames_reused)
        stats = {"fingerprint": fp, "shard": shard, "shards": shards, "frames_rendered": frames_rendered,
                 "frames_reused": frames_reused, "chunks_rendered": rendered, "chunks_skipped": skipped,
                 "segments": [counts[s] for s in sorted(counts)]}
        storage.write_text(storage.join(output, stats_name(shard)), json.dumps(stats, indent=1))
    return {"chunks": n_chunks, "rendered": rendered, "skipped": skipped, "frames": len(table),
            "fingerprint": fp, "settings": settings, **stats}


def _write_frame(output: str, frame: int, key: str, position: int, image: np.ndarray) -> dict:
    data = media.png_bytes(image, compress_level=1)
    name = frame_name(key, position)
    storage.write_bytes(storage.join(output, name), data)
    return {"frame": frame, "name": name, "sha256": hashlib.sha256(data).hexdigest(), "key": key,
            "position": position}


def _cached_entry(output: str, frame: int, key: str, position: int, digest: str) -> dict | None:
    """The manifest entry of a cached frame, or None when its file is gone or damaged (then
    it is rendered again): reading a PNG back costs far less than rendering it."""
    name = frame_name(key, position)
    try:
        data = storage.read_bytes(storage.join(output, name))
    except (ReelworksError, OSError):
        return None
    if hashlib.sha256(data).hexdigest() != digest:
        log.info("cached frame %s does not match its sha256: rendering it again", name)
        return None
    return {"frame": frame, "name": name, "sha256": digest, "key": key, "position": position}


def _write_cache_records(output: str, entries: list[dict]) -> None:
    """One `done/` record per segment for a chunk's new frames, after the frames themselves."""
    by_key: dict[str, list[dict]] = {}
    for entry in entries:
        by_key.setdefault(entry["key"], []).append({"position": entry["position"], "sha256": entry["sha256"]})
    for key, frames in by_key.items():
        first, last = min(f["position"] for f in frames), max(f["position"] for f in frames)
        storage.write_text(storage.join(output, SEGMENTS, key, "done", f"{first:05d}-{last:05d}.json"),
                           json.dumps({"key": key, "frames": frames}, indent=1))


def _manifest_matches(output: str, c: int, fp: str) -> bool:
    try:
        manifest = json.loads(storage.read_text(storage.join(output, chunk_name(c))))
    except (ValueError, ReelworksError):
        return False
    if manifest.get("fingerprint") != fp:
        log.info("chunk %d was rendered with other settings: rendering it again", c)
        return False
    return True


def scheduler_settings(pipe) -> dict:
    """The scheduler's class and configuration: another scheduler makes other pixels."""
    config = json.loads(json.dumps(dict(pipe.scheduler.config), default=str))
    return {"class": type(pipe.scheduler).__name__, **config}


def run_fingerprint(frames_roots: list[str]) -> str:
    """The fingerprint of the run that last wrote these folders (its `interpolate.json`); one
    clear line when there is none, or when the folders hold runs with other settings."""
    found = {}
    for root in frames_roots:
        try:
            found[root] = storage.read_json(storage.join(root, RUN_FILE))["fingerprint"]
        except (ReelworksError, OSError, ValueError, KeyError, TypeError):
            raise ReelworksError(f"{root} has no readable {RUN_FILE}: not the output of `musicvideo interpolate` "
                                 "(run it again)") from None
    if len(set(found.values())) > 1:
        raise ReelworksError("the frame folders were rendered with different settings ("
                             + ", ".join(f"{root}: {fp[:12]}" for root, fp in found.items())
                             + "): run interpolate on all of them with the same settings")
    return next(iter(found.values()))


def manifests(frames_roots: list[str]) -> dict[int, tuple[str, str]]:
    """frame -> (URI of its PNG, sha256) from the chunk manifests under each root that belong
    to the current run (`run_fingerprint`): a chunk an older run left there is not this video's."""
    fp = run_fingerprint(frames_roots)
    found: dict[int, tuple[str, str]] = {}
    for root in frames_roots:
        for key in storage.list_keys(storage.join(root, "chunks")):
            if not key.endswith(".json"):
                continue
            try:
                manifest = json.loads(storage.read_text(storage.join(root, "chunks", key)))
            except ValueError:
                continue
            if manifest.get("fingerprint") != fp:
                continue
            for entry in manifest.get("frames", []):
                found[int(entry["frame"])] = (storage.join(root, entry["name"]), entry["sha256"])
    return found
