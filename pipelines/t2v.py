"""Text to video: movie-clip descriptions -> diverse prompts -> an image -> a short clip (mp4, gif), with a scored gallery.

embed (MiniLM: near-duplicates dropped, `n` diverse prompts) -> image (Stable Diffusion at the
video's aspect and its own native size, one GPU) -> animate (SVD / LTX image-to-video or
AnimateDiff / Wan text-to-video, exactly `frames` frames at `fps`, 0: the model's own rate,
one GPU; images of another aspect cropped or padded, `image_fit`; SVD's `motion_bucket_id`,
`noise_aug_strength`, `decode_chunk_size` and LTX's `decode_timestep`, `decode_noise_scale`,
negative: the model's default; `motion_adapter` for AnimateDiff on an SD 1.5 `video_model`)
-> export (mp4, looping gif, strip) -> evaluate (frames and fps,
SSIM, optical flow and motion (a frozen clip scores 0), prompt diversity, CLIP agreement:
`clip_model` "" is auto, CLIP ViT-B/32 or for the tiny preset a tiny CLIP; "none" turns it off) with the
gallery report, also copied to `output` when given. `preset` picks the models and size
(`tiny`: random-init pipelines at 64x64 for CPUs; `full`: SD 1.5 and the kind's Hub model at
its usual size); the model and size parameters override it.
"""
from kfp import dsl

from reelworks import kubeflow
from reelworks.components import t2v as steps

# Memory the real models need beside the GPU (pipeline weights are staged in host memory
# while loading): LTX-Video 2B and Wan 1.3B in bf16 load in well under this.
RENDER_MEMORY = "32G"


def LOCAL_ARGUMENTS() -> dict:
    """A small run on the tiny preset: 3 prompts from 200 sampled descriptions (the shared
    Condensed Movies set when present, else generated ones), 12 frames at the model's own rate."""
    from reelworks.settings import cache_dir
    from reelworks.t2v.samples import sample_descriptions_csv

    return {"descriptions": sample_descriptions_csv(), "n": 3, "pool": 200, "frames": 12, "preset": "tiny", "output": str(cache_dir() / "t2v" / "gallery")}


def INPUT_CHECKS() -> dict:
    """Checked before the first step (0 and "" mean the preset's value or the default)."""
    from reelworks import checks
    from reelworks.diffusion import FIT_MODES
    from reelworks.t2v.animate import KINDS
    from reelworks.t2v.presets import PRESETS

    return {"descriptions": checks.existing_file, "n": checks.at_least(1), "frames": checks.at_least(1),
            "fps": checks.at_least(0), "image_fit": checks.one_of(FIT_MODES), "preset": checks.one_of(PRESETS),
            "kind": checks.one_of(KINDS),
            "width": checks.at_least(0), "height": checks.at_least(0), "steps_image": checks.at_least(0),
            "steps_video": checks.at_least(0), "pool": checks.at_least(0)}


@dsl.pipeline(name="t2v", description=__doc__.splitlines()[0])
def pipeline(descriptions: str = "", n: int = 4, frames: int = 16, fps: float = 0.0, preset: str = "tiny",
             kind: str = "ltx-i2v", image_model: str = "", video_model: str = "", width: int = 0, height: int = 0,
             steps_image: int = 0, steps_video: int = 0, round_frames: bool = False, pool: int = 2000, seed: int = 0,
             clip_model: str = "", output: str = "", image_fit: str = "crop", motion_bucket_id: int = -1,
             noise_aug_strength: float = -1.0, decode_chunk_size: int = 0, decode_timestep: float = -1.0,
             decode_noise_scale: float = -1.0, motion_adapter: str = ""):
    embed = kubeflow.with_s3(steps.embed_descriptions(descriptions=descriptions, n=n, pool=pool, seed=seed))
    image = steps.render_images(prompts=embed.outputs["prompts"], preset=preset, kind=kind, image_model=image_model,
                                width=width, height=height, steps=steps_image, seed=seed)
    kubeflow.on_gpu(kubeflow.with_s3(image), 1)
    animate = steps.animate_images(images=image.outputs["images"], preset=preset, kind=kind, video_model=video_model,
                                   frames=frames, fps=fps, width=width, height=height, steps=steps_video,
                                   round_frames=round_frames, seed=seed, image_fit=image_fit,
                                   motion_bucket_id=motion_bucket_id, noise_aug_strength=noise_aug_strength,
                                   decode_chunk_size=decode_chunk_size, decode_timestep=decode_timestep,
                                   decode_noise_scale=decode_noise_scale, motion_adapter=motion_adapter)
    kubeflow.on_gpu(kubeflow.with_s3(animate), 1)
    animate.set_memory_request(RENDER_MEMORY)
    export = kubeflow.with_s3(steps.export_clips(clips=animate.outputs["clips"]))
    kubeflow.with_s3(steps.evaluate_clips(prompts=embed.outputs["prompts"], clips=animate.outputs["clips"],
                                          videos=export.outputs["videos"], clip_model=clip_model, output=output))
