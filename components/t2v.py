"""Kubeflow components of the text-to-video workflow: each calls one `reelworks.t2v` function.

Prompts, images, clips, videos and the evaluation travel between steps as KFP `Dataset`
artifacts (their `.path` is handed to the library as the output URI); the descriptions CSV,
the models and the gallery's extra destination are plain string URIs. Empty strings and zeros
mean "the default" (KFP parameters cannot be None).
"""
from kfp.dsl import HTML, Dataset, Input, Markdown, Metrics, Output

from reelworks.kubeflow import component


@component("torch")
def embed_descriptions(prompts: Output[Dataset], markdown: Output[Markdown], html: Output[HTML],
                       metrics: Output[Metrics], descriptions: str = "", n: int = 8, pool: int = 2000, seed: int = 0):
    """MiniLM embeddings of the descriptions: `n` diverse prompts without near-duplicates."""
    from reelworks.t2v.embed import embed
    from reelworks.t2v.samples import sample_descriptions_csv

    result = embed(descriptions or sample_descriptions_csv(), prompts.path, n=n, pool=pool, seed=seed)
    result["report"].to_kfp(markdown=markdown, html_output=html, metrics=metrics)


@component("torch")
def render_images(prompts: Input[Dataset], images: Output[Dataset], preset: str = "tiny", kind: str = "ltx-i2v",
                  image_model: str = "", width: int = 0, height: int = 0, steps: int = 0, seed: int = 0):
    """Stable Diffusion text-to-image: the first frame of each clip, at the video's aspect and the image
    model's native size (preset's model and size unless given)."""
    from reelworks.t2v import presets
    from reelworks.t2v.image import image

    chosen = presets.settings(preset, kind, image_model=image_model, width=width, height=height)
    image(images.path, prompts=prompts.path, model=chosen["image_model"], width=chosen["image_width"],
          height=chosen["image_height"], steps=steps or None, seed=seed)


@component("torch")
def animate_images(images: Input[Dataset], clips: Output[Dataset], preset: str = "tiny", kind: str = "ltx-i2v",
                   video_model: str = "", frames: int = 16, fps: float = 0.0, width: int = 0, height: int = 0,
                   steps: int = 0, round_frames: bool = False, seed: int = 0, offload: bool = False,
                   image_fit: str = "crop", motion_bucket_id: int = -1, noise_aug_strength: float = -1.0,
                   decode_chunk_size: int = 0, decode_timestep: float = -1.0, decode_noise_scale: float = -1.0,
                   motion_adapter: str = ""):
    """Image-to-video (svd, ltx-i2v) or text-to-video (animatediff, wan) with exactly `frames` frames
    (`fps` 0: the kind's own rate; a negative or zero model setting: the kind's default)."""
    from reelworks.t2v import presets
    from reelworks.t2v.animate import animate

    chosen = presets.settings(preset, kind, video_model=video_model, width=width, height=height)
    given = dict(motion_bucket_id=motion_bucket_id, noise_aug_strength=noise_aug_strength,
                 decode_chunk_size=decode_chunk_size or -1, decode_timestep=decode_timestep,
                 decode_noise_scale=decode_noise_scale)
    animate(clips.path, images=images.path, model=chosen["video_model"], kind=kind, frames=frames, fps=fps or None,
            width=chosen["width"], height=chosen["height"], steps=steps or None, round_frames=round_frames,
            seed=seed, offload=offload, image_fit=image_fit, motion_adapter=motion_adapter or None,
            **{name: value for name, value in given.items() if value >= 0})


@component("cpu")
def export_clips(clips: Input[Dataset], videos: Output[Dataset], fps: float = 0.0):
    """mp4, looping gif and frame strip per clip (`fps` 0: the rate animated for)."""
    from reelworks.t2v.export import export

    export(clips.path, videos.path, fps=fps or None)


@component("torch")
def evaluate_clips(prompts: Input[Dataset], clips: Input[Dataset], videos: Input[Dataset],
                   evaluation: Output[Dataset], markdown: Output[Markdown], html: Output[HTML],
                   metrics: Output[Metrics], clip_model: str = "", output: str = ""):
    """Frame counts, temporal consistency and motion, prompt diversity, CLIP agreement (`clip_model` "":
    auto, "none": off); the gallery report (also copied to `output` when given)."""
    from reelworks import storage
    from reelworks.t2v.evaluate import evaluate

    result = evaluate(clips.path, videos.path, evaluation.path, prompts=prompts.path, clip_model=clip_model or "auto")
    result["report"].to_kfp(markdown=markdown, html_output=html, metrics=metrics)
    if output:
        storage.sync_up(evaluation.path, output)
        print(f"gallery: {storage.join(output, 'report/report.html')}")
