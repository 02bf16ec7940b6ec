"""`t2v animate`: images (and their prompts) -> short clips of exactly the frames asked for.

Models, named the way `diffusion.load(model, kind)` names them:

| kind | what | takes | frames it can make | size multiple |
|---|---|---|---|---|
| `svd` | StableVideoDiffusion, image-to-video | the image | any | the VAE's, x2 per UNet level |
| `ltx-i2v` | LTX-Video image-to-video | the image and the text | 8k+1 (the VAE's temporal ratio k+1) | 32 |
| `animatediff` | AnimateDiff, one-stage text-to-video | the text | any (FreeNoise past 16) | as SD |
| `wan` | Wan 2.1, one-stage text-to-video | the text | 4k+1 (the VAE's temporal ratio) | 16 |

`--model` is `tiny` (the random-init preset of `--kind`, default ltx-i2v), a kind's name (its
usual Hub pipeline; `animatediff`: Stable Diffusion 1.5 with the AnimateDiff v1.5.2 motion
adapter, composed at load time), or a Hub id / local folder / s3:// prefix (`--kind` names
what it is; for a folder it is read from `model_index.json` when not given). AnimateDiff needs
no pre-saved pipeline: `motion_adapter` (Hub id, folder or s3:// prefix of a MotionAdapter)
goes with a Stable Diffusion 1.5 `--model`. diffusers' TextToVideoSD and
I2VGenXL are deprecated and not used.

Frames come from `diffusion.video_frames`, the one video-frame path (music video uses it too).

Frame rate: by default the kind's own (`diffusion.VIDEO_FPS`: SVD 7, LTX 24, Wan 16,
AnimateDiff 8), which is also what SVD (`fps`) and LTX (`frame_rate`) are conditioned on;
`fps` sets another, for both the conditioning and the written video.

Frame counts: by default the clip has exactly `frames` frames: the model makes the next count
it can (e.g. LTX 17 for 12) and the tail is trimmed (one line says so). With
`round_frames=True` the count is rounded to the nearest one the model can make instead, with
a warning (e.g. 12 -> 9 or 13; no trimming: every frame is the model's).

Nothing is squashed: an image whose aspect differs from the clip's is center-cropped
(`image_fit="crop"`) or padded (`"pad"`) to it; a size the model cannot make is generated at
the next multiple up and center-cropped to the requested size (one warning). The clip's
metadata says which (`image_fit`, `frame_fit`).

Model settings (`diffusion.VIDEO_SETTINGS`; given to a kind that has no such setting: one
line): SVD's `motion_bucket_id`, `noise_aug_strength`, `decode_chunk_size`; LTX's
`decode_timestep`, `decode_noise_scale`. The clip's metadata records the ones used.

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
from dataclasses import dataclass

import numpy as np

from reelworks import diffusion, storage
from reelworks.media import png_bytes
from reelworks.errors import ReelworksError
from reelworks.metrics import job_metrics
from reelworks.progress import track

log = logging.getLogger(__name__)

KINDS = ("svd", "ltx-i2v", "animatediff", "wan")
IMAGE_TO_VIDEO = diffusion.IMAGE_TO_VIDEO_KINDS
DEFAULT_KIND = "ltx-i2v"
# The usual Hub pipeline of each kind (`--model KIND`). AnimateDiff's is composed at load time:
# an SD 1.5 base (HUB_MODELS) and a motion adapter (MOTION_ADAPTER).
HUB_MODELS = {"svd": "stabilityai/stable-video-diffusion-img2vid-xt", "ltx-i2v": "Lightricks/LTX-Video",
              "wan": "Wan-AI/Wan2.1-T2V-1.3B-Diffusers",
              "animatediff": "stable-diffusion-v1-5/stable-diffusion-v1-5"}
MOTION_ADAPTER = "guoyww/animatediff-motion-adapter-v1-5-2"
# Sizes, frames and steps the real models were trained for; the tiny preset's are small.
USUAL = {"svd": dict(width=1024, height=576, frames=25, steps=25, guidance=3.0),
         "ltx-i2v": dict(width=704, height=480, frames=121, steps=40, guidance=3.0),
         "animatediff": dict(width=512, height=512, frames=16, steps=25, guidance=7.5),
         "wan": dict(width=832, height=480, frames=81, steps=30, guidance=5.0)}
TINY_STEPS = 2
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


def animate(output: str, *, images: str | None = None, prompts: str | None = None, prompt: str | None = None,
            model: str = "tiny", kind: str | None = None, frames: int | None = None, fps: float | None = None,
            width: int | None = None, height: int | None = None, steps: int | None = None,
            guidance: float | None = None, negative_prompt: str = NEGATIVE_PROMPT, round_frames: bool = False,
            seed: int = 0, device: str | None = None, offload: bool = False, slicing: bool = False,
            tiling: bool = False, image_fit: str = "crop", motion_bucket_id: int | None = None,
            noise_aug_strength: float | None = None, decode_chunk_size: int | None = None,
            decode_timestep: float | None = None, decode_noise_scale: float | None = None,
            motion_adapter: str | None = None) -> dict:
    """Animate every item (see the module doc); returns the manifest written as animate.json.

    `fps` None: the kind's own rate. The model settings left None take `diffusion.VIDEO_SETTINGS`'s."""
    source, kind = resolve_model(model, kind)
    if motion_adapter and kind != "animatediff":
        raise ReelworksError(f"--motion-adapter is for --kind animatediff, not {kind}")
    if model == "animatediff":
        motion_adapter = motion_adapter or MOTION_ADAPTER
    usual = USUAL[kind]
    frames = usual["frames"] if frames is None else frames
    width, height = width or usual["width"], height or usual["height"]
    steps = steps or (TINY_STEPS if model == "tiny" else usual["steps"])
    guidance = usual["guidance"] if guidance is None else guidance
    fps = float(diffusion.VIDEO_FPS[kind] if fps is None else fps)
    if fps <= 0:
        raise ReelworksError(f"fps must be positive (got {fps})")
    given = dict(motion_bucket_id=motion_bucket_id, noise_aug_strength=noise_aug_strength,
                 decode_chunk_size=decode_chunk_size, decode_timestep=decode_timestep,
                 decode_noise_scale=decode_noise_scale)
    # Checked before the (slow) model load; the model's own multiples come after it.
    settings = diffusion.video_settings(kind, **{name: value for name, value in given.items() if value is not None})
    if image_fit not in diffusion.FIT_MODES:
        raise ReelworksError(f"unknown fit {image_fit!r}: expected one of {', '.join(diffusion.FIT_MODES)}")
    diffusion.plan_frames(frames, diffusion.VideoRules(kind, 1, 2))
    diffusion.plan_size(width, height, diffusion.VideoRules(kind, 1, 2))
    with job_metrics("t2v_animate") as m:
        items = read_items(images, prompts, prompt, seed, m)
        if kind in IMAGE_TO_VIDEO and items[0].image is None:
            raise ReelworksError(f"{kind} animates images: give --images (an `image` output or image files)")
        if kind not in IMAGE_TO_VIDEO and images:
            log.info("%s is one-stage text-to-video: the images are not used, only their prompts", kind)
        pipe = diffusion.load(source, kind, device=device, offload=offload, slicing=slicing, tiling=tiling,
                              motion_adapter=motion_adapter)
        rule = diffusion.video_rules(pipe, kind)
        generate_frames, keep = diffusion.plan_frames(frames, rule, round_frames)
        gen_width, gen_height = diffusion.plan_size(width, height, rule)
        if (gen_width, gen_height) != (width, height):
            log.warning("%s makes sizes in multiples of %d: generating %dx%d and fitting it to %dx%d (center crop, "
                        "never squashed)", kind, rule.size_multiple, gen_width, gen_height, width, height)
        m.gauge("reelworks_t2v_frames_generated", "Frames the model generated per clip").set(generate_frames)
        clips = []
        with storage.output_dir(output) as tmp:
            for item in track(items, f"animating ({kind})", total=len(items), unit="clip"):
                first, how = (diffusion.fit_image(item.image, gen_width, gen_height, image_fit)
                              if kind in IMAGE_TO_VIDEO else (None, None))
                if how in ("cropped", "padded"):
                    log.info("clip %s: the %dx%d image %s to the clip's %dx%d", item.id, *item.image.size, how,
                             gen_width, gen_height)

                def render(batch: list[Item]) -> list[np.ndarray]:
                    return [diffusion.video_frames(
                        pipe, kind, image=first, prompt=entry.prompt, negative_prompt=negative_prompt,
                        seed=entry.seed, num_frames=generate_frames, height=gen_height, width=gen_width, fps=fps,
                        steps=steps, guidance=guidance, desc=f"clip {entry.id}", **settings) for entry in batch]

                fitted = [diffusion.fit_image(frame, width, height)
                          for frame in diffusion.run_batched(render, [item], batch_size=1)[0][:keep]]
                video, frame_fit = [np.asarray(frame) for frame, _ in fitted], fitted[0][1]
                names = []
                folder = tmp / "clips" / item.id
                folder.mkdir(parents=True, exist_ok=True)
                for i, frame in enumerate(video):
                    name = f"clips/{item.id}/frame_{i:04d}.png"
                    (tmp / name).write_bytes(png_bytes(frame))
                    names.append(name)
                clip = {"id": item.id, "prompt": item.prompt, "seed": item.seed, "kind": kind, "model": model,
                        "frames": len(video), "generated_frames": generate_frames, "fps": fps,
                        "width": width, "height": height, "steps": steps, "frame_fit": frame_fit,
                        "settings": settings, "frame_files": names}
                if kind in IMAGE_TO_VIDEO:
                    # The image as the model saw it (fitted, at the generated size).
                    clip["image_fit"] = how
                    clip["source_image"] = f"clips/{item.id}/source.png"
                    (tmp / clip["source_image"]).write_bytes(png_bytes(np.asarray(first)))
                clips.append(clip)
                m.items.inc()
            manifest = {"kind": kind, "model": model, "motion_adapter": motion_adapter, "frames_asked": frames,
                        "frames": keep, "generated_frames": generate_frames, "fps": fps, "width": width,
                        "height": height,
                        "frame_rule": rule.frame_rule, "size_multiple": rule.size_multiple, "settings": settings,
                        "clips": clips}
            (tmp / "animate.json").write_text(json.dumps(manifest, indent=2))
    log.info("%d clip(s) of %d frames at %dx%d, %g fps (%s, %s) -> %s", len(clips), keep, width, height, fps, kind,
             model, output)
    return manifest
