"""`t2v animate`: images (and their prompts) -> short clips of exactly the frames asked for.

Models, named the way `diffusion.load(model, kind)` names them:

| kind | what | takes | frames it can make | size multiple |
|---|---|---|---|---|
| `svd` | StableVideoDiffusion, image-to-video | the image | any | the VAE's, x2 per UNet level |
| `ltx-i2v` | LTX-Video image-to-video | the image and the text | 8k+1 (the VAE's temporal ratio k+1) | 32 |
| `animatediff` | AnimateDiff, one-stage text-to-video | the text | any (FreeNoise past 16) | as SD |
| `wan` | Wan 2.1, one-stage text-to-video | the text | 4k+1 (the VAE's temporal ratio) | 16 |

`--model` is `tiny` (the random-init preset of `--kind`, default ltx-i2v), a kind's name (its
usual Hub pipeline), or a Hub id / local folder / s3:// prefix (`--kind` names what it is;
for a folder it is read from `model_index.json` when not given). diffusers' TextToVideoSD and
I2VGenXL are deprecated and not used.

Frame counts: by default the clip has exactly `frames` frames: the model makes the next count
it can (e.g. LTX 17 for 12) and the tail is trimmed. With `round_frames=True` the count is
rounded to the nearest one the model can make instead, with a warning (e.g. 12 -> 9 or 13;
no trimming: every frame is the model's). A size the model cannot make is generated at the
next multiple up and scaled to the requested size (one warning).

Input: an `image` output folder (images.json: id, prompt, seed, image), a folder of images, or
one image file; one-stage kinds only need the prompts (`prompts` CSV/embed folder, or `prompt`).
A file that is not an image is counted (`m.drop("not_an_image")`) and skipped; a single one
is an error. Output folder (written whole, `animate.json` last): `clips/<id>/frame_NNNN.png`,
and for image-to-video kinds `clips/<id>/source.png`, the image the clip animates (the gallery
shows it beside the clip).
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass

import numpy as np

from reelworks import diffusion, storage
from reelworks.errors import ReelworksError
from reelworks.metrics import job_metrics
from reelworks.progress import track
from reelworks.t2v.export import png_bytes

log = logging.getLogger(__name__)

KINDS = ("svd", "ltx-i2v", "animatediff", "wan")
IMAGE_TO_VIDEO = ("svd", "ltx-i2v")
DEFAULT_KIND = "ltx-i2v"
# The usual Hub pipeline of each kind (`--model KIND`). AnimateDiff has none: its pipelines are
# composed (a motion adapter + an SD 1.5 model); save one with save_pretrained and give the folder.
HUB_MODELS = {"svd": "stabilityai/stable-video-diffusion-img2vid-xt", "ltx-i2v": "Lightricks/LTX-Video",
              "wan": "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"}
# Sizes, frames and steps the real models were trained for; the tiny preset's are small.
USUAL = {"svd": dict(width=1024, height=576, frames=25, steps=25, guidance=3.0),
         "ltx-i2v": dict(width=704, height=480, frames=121, steps=40, guidance=3.0),
         "animatediff": dict(width=512, height=512, frames=16, steps=25, guidance=7.5),
         "wan": dict(width=832, height=480, frames=81, steps=30, guidance=5.0)}
TINY_STEPS = 2
TEXT_TOKENS = {"ltx-i2v": 128, "wan": 512, "animatediff": 77}  # what the kind's text encoder takes
ANIMATEDIFF_CONTEXT = 16  # frames AnimateDiff's motion modules were trained on; FreeNoise beyond
NEGATIVE_PROMPT = "worst quality, inconsistent motion, blurry, jittery, distorted"
CLASS_KINDS = {v: k for k, v in diffusion.PIPELINES.items()}


# --------------------------------------------------------------------------- models


def resolve_model(model: str, kind: str | None = None) -> tuple[str, str]:
    """(model for `diffusion.load`, kind) from the `--model`/`--kind` vocabulary."""
    if kind is not None and kind not in KINDS:
        raise ReelworksError(f"unknown animation kind {kind!r}: expected one of {', '.join(KINDS)}")
    if model == "tiny":
        return "tiny", kind or DEFAULT_KIND
    if model in KINDS:
        if kind and kind != model:
            raise ReelworksError(f"--model {model} and --kind {kind} disagree")
        if model not in HUB_MODELS:
            raise ReelworksError(f"{model} has no single Hub pipeline: give a folder or s3:// prefix holding a "
                                 "saved AnimateDiffPipeline (motion adapter + SD 1.5), with --kind animatediff")
        return HUB_MODELS[model], model
    if kind is None:
        kind = _kind_from_index(model)
    return model, kind


def _kind_from_index(model: str) -> str:
    """The kind a saved pipeline folder declares in its model_index.json."""
    index = storage.join(model, "model_index.json")
    if storage.is_s3(model) or model.startswith(("/", ".", "~", "file://")):
        if storage.exists(index):
            name = json.loads(storage.read_text(index)).get("_class_name", "")
            if name in CLASS_KINDS and CLASS_KINDS[name] in KINDS:
                return CLASS_KINDS[name]
            raise ReelworksError(f"{model} holds a {name or 'unknown'} pipeline, not one of "
                                 f"{', '.join(diffusion.PIPELINES[k] for k in KINDS)}")
    raise ReelworksError(f"say which kind of model {model!r} is: --kind {'|'.join(KINDS)}")


@dataclass(frozen=True)
class Rules:
    """What a loaded pipeline can make: frame counts `step*k + 1` (step 1: any), sizes in multiples."""

    kind: str
    frame_step: int
    size_multiple: int

    def valid(self, frames: int) -> bool:
        return frames >= 1 and (frames - 1) % self.frame_step == 0


def rules(pipe, kind: str) -> Rules:
    """Read the frame and size rules off the pipeline itself (the tiny presets' ratios differ
    from the real models': LTX's VAE compresses time 8x, its tiny one less)."""
    if kind == "ltx-i2v":
        step = pipe.vae_temporal_compression_ratio * pipe.transformer_temporal_patch_size
        multiple = math.lcm(32, pipe.vae_spatial_compression_ratio * pipe.transformer_spatial_patch_size)
    elif kind == "wan":
        step = pipe.vae_scale_factor_temporal
        patch = pipe.transformer.config.patch_size
        multiple = math.lcm(16, pipe.vae_scale_factor_spatial * int(patch[1]))
    else:
        step = 1
        multiple = pipe.vae_scale_factor * 2 ** (len(pipe.unet.config.block_out_channels) - 1)
    return Rules(kind, int(step), math.lcm(int(multiple), 2))  # H.264 yuv420p wants even sizes


def plan_frames(frames: int, rule: Rules, round_frames: bool = False) -> tuple[int, int]:
    """(frames to generate, frames to keep) for `frames` asked for.

    Exact (default): the next count the model can make, trimmed to `frames`. `round_frames`:
    the nearest count it can make (ties go up), kept whole, with a warning when it differs."""
    if frames < 1:
        raise ReelworksError(f"frames must be at least 1 (got {frames})")
    if rule.valid(frames):
        return frames, frames
    below = (frames - 1) // rule.frame_step * rule.frame_step + 1
    above = below + rule.frame_step
    if not round_frames:
        return above, frames
    nearest = below if frames - below < above - frames and below >= 1 else above
    log.warning("%s makes %d*k+1 frames: %d frames asked for, rounded to %d", rule.kind, rule.frame_step, frames,
                nearest)
    return nearest, nearest


def plan_size(width: int, height: int, rule: Rules) -> tuple[int, int]:
    """The size to generate at: the requested one rounded up to the model's multiple."""
    if width < 1 or height < 1:
        raise ReelworksError(f"size must be positive (got {width}x{height})")
    if width % 2 or height % 2:
        raise ReelworksError(f"width and height must be even for H.264 (got {width}x{height})")
    up = lambda v: -(-v // rule.size_multiple) * rule.size_multiple  # noqa: E731
    return up(width), up(height)


# --------------------------------------------------------------------------- inputs


@dataclass
class Item:
    id: str
    prompt: str
    seed: int
    image: object = None  # PIL image for image-to-video kinds


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


def open_image(data: bytes, name: str):
    """A PIL RGB image, or ReelworksError naming the file when it is not one (or too large)."""
    from reelworks import media

    return media.open_image(data, name).convert("RGB")


def read_items(images: str | None, prompts: str | None, prompt: str | None, seed: int, m) -> list[Item]:
    """Items to animate from an `image` output folder, a folder of images, one image file,
    a prompts CSV / embed folder, or one prompt."""
    items: list[Item] = []
    if images:
        manifest = storage.join(images, "images.json")
        location = storage.parse(images)
        single_file = storage.exists(images) if location.is_s3 else location.path.is_file()
        if single_file:
            items.append(Item("c000", prompt or "", seed, open_image(storage.read_bytes(images), images)))
            return items
        keys = storage.list_keys(images)
        if not keys:
            raise ReelworksError(f"nothing at {images}")
        if storage.exists(manifest):
            entries = json.loads(storage.read_text(manifest))["images"]
        else:
            entries = [{"id": f"c{i:03d}", "prompt": prompt or "", "seed": seed + i, "image": key}
                       for i, key in enumerate(k for k in keys if not k.startswith(".") and "/" not in k)]
        for entry in entries:
            try:
                image = open_image(storage.read_bytes(storage.join(images, entry["image"])), entry["image"])
            except ReelworksError as exc:
                log.warning("skipped: %s", exc)
                m.drop("not_an_image")
                continue
            items.append(Item(str(entry["id"]), prompt or entry.get("prompt", ""), int(entry["seed"]), image))
        if not items:
            raise ReelworksError(f"no image in {images} could be read")
        return items
    if prompts:
        from reelworks.t2v.embed import read_prompts

        return [Item(p["id"], p["prompt"], seed + i) for i, p in enumerate(read_prompts(prompts))]
    if prompt:
        return [Item("c000", prompt, seed)]
    raise ReelworksError("nothing to animate: give images, prompts or a prompt")


# --------------------------------------------------------------------------- generating


def to_uint8(frames) -> np.ndarray:
    """diffusers' float frames in [0, 1] (F, H, W, 3) -> uint8."""
    return (np.clip(np.asarray(frames, dtype=np.float32), 0, 1) * 255).round().astype(np.uint8)


def resize_frames(frames: np.ndarray, width: int, height: int) -> np.ndarray:
    from PIL import Image

    if frames.shape[1:3] == (height, width):
        return frames
    return np.stack([np.asarray(Image.fromarray(f).resize((width, height), Image.LANCZOS)) for f in frames])


def generate_clip(pipe, kind: str, item: Item, *, frames: int, width: int, height: int, fps: float, steps: int,
                  guidance: float, negative_prompt: str) -> np.ndarray:
    """One clip as (frames, height, width, 3) uint8, exactly as asked (see the module doc for
    the rules); `frames`, `width`, `height` must already be ones the model can make."""
    import torch

    generator = diffusion.generators([item.seed], "cpu")[0]
    common = dict(num_frames=frames, height=height, width=width, num_inference_steps=steps, generator=generator,
                  output_type="np")
    if kind in TEXT_TOKENS:
        text = diffusion.fit_prompt(pipe.tokenizer, item.prompt, TEXT_TOKENS[kind])
        common.update(prompt=text, negative_prompt=negative_prompt, guidance_scale=guidance)
    if kind == "svd":
        out = pipe(image=item.image, fps=max(1, round(fps)), min_guidance_scale=1.0,
                   max_guidance_scale=max(1.0, guidance), decode_chunk_size=8, **common)
    elif kind == "ltx-i2v":
        out = pipe(image=item.image, frame_rate=max(1, round(fps)), **common)
    elif kind == "animatediff":
        if frames > ANIMATEDIFF_CONTEXT:
            pipe.enable_free_noise(context_length=ANIMATEDIFF_CONTEXT, context_stride=4)
        elif getattr(pipe, "free_noise_enabled", False):
            pipe.disable_free_noise()
        out = pipe(**common)
    else:
        out = pipe(**common)
    video = out.frames
    if isinstance(video, torch.Tensor):
        video = video.float().cpu().numpy()
    return to_uint8(np.asarray(video)[0])


def animate(output: str, *, images: str | None = None, prompts: str | None = None, prompt: str | None = None,
            model: str = "tiny", kind: str | None = None, frames: int | None = None, fps: float = 8.0,
            width: int | None = None, height: int | None = None, steps: int | None = None,
            guidance: float | None = None, negative_prompt: str = NEGATIVE_PROMPT, round_frames: bool = False,
            seed: int = 0, device: str | None = None, offload: bool = False, slicing: bool = False,
            tiling: bool = False) -> dict:
    """Animate every item (see the module doc); returns the manifest written as animate.json."""
    source, kind = resolve_model(model, kind)
    usual = USUAL[kind]
    frames = usual["frames"] if frames is None else frames
    width, height = width or usual["width"], height or usual["height"]
    steps = steps or (TINY_STEPS if model == "tiny" else usual["steps"])
    guidance = usual["guidance"] if guidance is None else guidance
    if fps <= 0:
        raise ReelworksError(f"fps must be positive (got {fps})")
    # Checked before the (slow) model load; the model's own multiples come after it.
    plan_frames(frames, Rules(kind, 1, 2))
    plan_size(width, height, Rules(kind, 1, 2))
    with job_metrics("t2v_animate") as m:
        items = read_items(images, prompts, prompt, seed, m)
        if kind in IMAGE_TO_VIDEO and items[0].image is None:
            raise ReelworksError(f"{kind} animates images: give --images (an `image` output or image files)")
        if kind not in IMAGE_TO_VIDEO and images:
            log.info("%s is one-stage text-to-video: the images are not used, only their prompts", kind)
        pipe = diffusion.load(source, kind, device=device, offload=offload, slicing=slicing, tiling=tiling)
        rule = rules(pipe, kind)
        generate_frames, keep = plan_frames(frames, rule, round_frames)
        gen_width, gen_height = plan_size(width, height, rule)
        if (gen_width, gen_height) != (width, height):
            log.warning("%s makes sizes in multiples of %d: generating %dx%d and scaling to %dx%d", kind,
                        rule.size_multiple, gen_width, gen_height, width, height)
        m.gauge("reelworks_t2v_frames_generated", "Frames the model generated per clip").set(generate_frames)
        clips = []
        with storage.output_dir(output) as tmp:
            def render(batch: list[Item]) -> list[np.ndarray]:
                return [generate_clip(pipe, kind, item, frames=generate_frames, width=gen_width, height=gen_height,
                                      fps=fps, steps=steps, guidance=guidance, negative_prompt=negative_prompt)
                        for item in batch]

            for item in track(items, f"animating ({kind})", total=len(items), unit="clip"):
                video = diffusion.run_batched(render, [item], batch_size=1)[0]
                if video.shape[:3] != (generate_frames, gen_height, gen_width):
                    raise ReelworksError(f"{model} ({kind}) made {video.shape[0]} frames of {video.shape[2]}x"
                                         f"{video.shape[1]}, not the {generate_frames} of {gen_width}x{gen_height} "
                                         "its configuration promises")
                video = resize_frames(video[:keep], width, height)
                names = []
                folder = tmp / "clips" / item.id
                folder.mkdir(parents=True, exist_ok=True)
                for i, frame in enumerate(video):
                    name = f"clips/{item.id}/frame_{i:04d}.png"
                    (tmp / name).write_bytes(png_bytes(frame))
                    names.append(name)
                clip = {"id": item.id, "prompt": item.prompt, "seed": item.seed, "kind": kind, "model": model,
                        "frames": len(video), "generated_frames": generate_frames, "fps": fps,
                        "width": width, "height": height, "steps": steps, "frame_files": names}
                if kind in IMAGE_TO_VIDEO:
                    clip["source_image"] = f"clips/{item.id}/source.png"
                    (tmp / clip["source_image"]).write_bytes(png_bytes(np.asarray(item.image)))
                clips.append(clip)
                m.items.inc()
            manifest = {"kind": kind, "model": model, "frames_asked": frames, "frames": keep,
                        "generated_frames": generate_frames, "fps": fps, "width": width, "height": height,
                        "frame_rule": f"{rule.frame_step}k+1" if rule.frame_step > 1 else "any",
                        "size_multiple": rule.size_multiple, "clips": clips}
            (tmp / "animate.json").write_text(json.dumps(manifest, indent=2))
    log.info("%d clip(s) of %d frames at %dx%d (%s, %s) -> %s", len(clips), keep, width, height, kind, model, output)
    return manifest
