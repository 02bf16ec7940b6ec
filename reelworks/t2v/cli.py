"""`reelworks t2v ...`: one command per step, each a thin shell over the library."""
from __future__ import annotations

from typing import Optional

import typer

import reelworks.t2v

app = typer.Typer(help=reelworks.t2v.__doc__.split("\n\n")[0], no_args_is_help=True)

ModelHelp = ("tiny (the random-init preset of --kind), svd | ltx-i2v | wan | animatediff (that kind's usual Hub "
             "pipeline; animatediff: SD 1.5 + the v1.5.2 motion adapter), or a Hub id, local folder or s3:// prefix")


@app.command()
def embed(descriptions: Optional[str] = typer.Option(None, help="CSV with a description/prompt/text column "
                                                                 "(default: the shared Condensed Movies descriptions, "
                                                                 "else a generated sample)."),
          output: str = typer.Option(..., "--output", "-o", help="Folder for prompts.csv, embeddings.npy, report/."),
          n: int = typer.Option(8, "-n", help="Prompts to pick."),
          pool: int = typer.Option(2000, help="Descriptions sampled (with --seed) before embedding; 0: all."),
          seed: int = typer.Option(0),
          nearest: int = typer.Option(3, help="Nearest real descriptions listed per prompt."),
          duplicate_threshold: float = typer.Option(0.92, help="Cosine at or above which a description is a "
                                                               "near-duplicate of an earlier one."),
          model: str = typer.Option("minilm", help="minilm (the packaged all-MiniLM-L6-v2) or a "
                                                   "sentence-transformers Hub id / folder / s3:// prefix."),
          device: Optional[str] = typer.Option(None)) -> None:
    """Sentence embeddings (MiniLM): drop near-duplicates, pick a diverse sample, nearest real descriptions."""
    from reelworks.t2v.embed import embed as run
    from reelworks.t2v.samples import sample_descriptions_csv

    result = run(descriptions or sample_descriptions_csv(), output, n=n, pool=pool, seed=seed, k=nearest,
                 duplicate_threshold=duplicate_threshold, model=model, device=device)
    typer.echo(f"{result['n']} prompts from {result['pool']} descriptions ({result['distinct']} distinct, "
               f"{result['after_near_duplicates']} after near-duplicates); diversity {result['diversity']:.3f} "
               f"(a random pick: {result['random_diversity']:.3f}) -> {output}")


@app.command()
def image(prompts: Optional[str] = typer.Option(None, help="An `embed` output or a CSV with a description/prompt column."),
          prompt: Optional[str] = typer.Option(None, help="One prompt instead of --prompts."),
          output: str = typer.Option(..., "--output", "-o", help="Folder for images/ and images.json."),
          model: str = typer.Option("tiny", help="tiny, a Hub id, a local folder or an s3:// prefix."),
          kind: str = typer.Option("sd", help="sd or sdxl."),
          seed: int = typer.Option(0, help="Seed of the first prompt; prompt i gets seed + i."),
          negative_prompt: str = typer.Option("blurry, low quality, deformed, text, watermark"),
          guidance: float = typer.Option(7.5), steps: Optional[int] = typer.Option(None, help="Default: 2 tiny, 30 else."),
          width: int = typer.Option(512), height: int = typer.Option(512),
          batch_size: str = typer.Option("auto", help="Images per batch, or auto (halves on CUDA out-of-memory)."),
          limit: Optional[int] = typer.Option(None, help="Only the first N prompts."),
          device: Optional[str] = typer.Option(None)) -> None:
    """Stable Diffusion text-to-image: the first frame of each clip."""
    from reelworks.t2v.image import image as run

    result = run(output, prompts=prompts, prompt=prompt, model=model, kind=kind, seed=seed,
                 negative_prompt=negative_prompt, guidance=guidance, steps=steps, width=width, height=height,
                 batch_size=batch_size if batch_size == "auto" else int(batch_size), device=device, limit=limit)
    typer.echo(f"{len(result['images'])} image(s) at {width}x{height} -> {output}")


@app.command()
def animate(images: Optional[str] = typer.Option(None, help="An `image` output, a folder of images or one image."),
            prompts: Optional[str] = typer.Option(None, help="For wan/animatediff without images: an `embed` output or CSV."),
            prompt: Optional[str] = typer.Option(None, help="The text (overrides the images' own prompts)."),
            output: str = typer.Option(..., "--output", "-o", help="Folder for clips/ and animate.json."),
            model: str = typer.Option("tiny", help=ModelHelp + "."),
            kind: Optional[str] = typer.Option(None, help="svd, ltx-i2v, animatediff or wan (default: from --model; "
                                                          "ltx-i2v for tiny)."),
            frames: Optional[int] = typer.Option(None, help="Frames per clip (default: the kind's usual)."),
            fps: Optional[float] = typer.Option(None, help="Frame rate of the clip and of the model's fps "
                                                           "conditioning (default: the kind's own: svd 7, ltx-i2v "
                                                           "24, wan 16, animatediff 8)."),
            round_frames: bool = typer.Option(False, "--round-frames",
                                              help="Round to the nearest frame count the model makes (warns) "
                                                   "instead of generating more and trimming."),
            width: Optional[int] = typer.Option(None), height: Optional[int] = typer.Option(None),
            steps: Optional[int] = typer.Option(None), guidance: Optional[float] = typer.Option(None),
            negative_prompt: Optional[str] = typer.Option(None), seed: int = typer.Option(0),
            device: Optional[str] = typer.Option(None),
            offload: bool = typer.Option(False, help="Model CPU offload (CUDA)."),
            slicing: bool = typer.Option(False, help="Attention and VAE slicing."),
            tiling: bool = typer.Option(False, help="Tiled VAE decoding."),
            image_fit: str = typer.Option("crop", help="An image of another aspect than the clip: crop (center) "
                                                       "or pad (black bars); never squashed."),
            motion_bucket_id: Optional[int] = typer.Option(None, help="svd: how much it moves (default 127)."),
            noise_aug_strength: Optional[float] = typer.Option(None, help="svd: noise added to the image "
                                                                          "(default 0.02; more: freer motion)."),
            decode_chunk_size: Optional[int] = typer.Option(None, help="svd: frames decoded at once (default 8; "
                                                                       "lower saves memory)."),
            decode_timestep: Optional[float] = typer.Option(None, help="ltx-i2v: the VAE's decode timestep "
                                                                       "(LTX 0.9.1+: 0.05)."),
            decode_noise_scale: Optional[float] = typer.Option(None, help="ltx-i2v: the VAE's decode noise "
                                                                          "(LTX 0.9.1+: 0.025)."),
            motion_adapter: Optional[str] = typer.Option(None, help="animatediff: a MotionAdapter (Hub id, folder "
                                                                    "or s3://) to run with an SD 1.5 --model.")) -> None:
    """Image-to-video (SVD, LTX) or one-stage text-to-video (AnimateDiff, Wan), exactly --frames frames."""
    from reelworks.t2v.animate import NEGATIVE_PROMPT
    from reelworks.t2v.animate import animate as run

    result = run(output, images=images, prompts=prompts, prompt=prompt, model=model, kind=kind, frames=frames, fps=fps,
                 width=width, height=height, steps=steps, guidance=guidance,
                 negative_prompt=negative_prompt or NEGATIVE_PROMPT, round_frames=round_frames, seed=seed,
                 device=device, offload=offload, slicing=slicing, tiling=tiling, image_fit=image_fit,
                 motion_bucket_id=motion_bucket_id, noise_aug_strength=noise_aug_strength,
                 decode_chunk_size=decode_chunk_size, decode_timestep=decode_timestep,
                 decode_noise_scale=decode_noise_scale, motion_adapter=motion_adapter)
    typer.echo(f"{len(result['clips'])} clip(s) of {result['frames']} frames at {result['width']}x{result['height']} "
               f"({result['kind']}, generated {result['generated_frames']}, rule {result['frame_rule']}, "
               f"{result['fps']:g} fps) -> {output}")


@app.command()
def export(clips: str = typer.Option(..., help="An `animate` output."),
           output: str = typer.Option(..., "--output", "-o", help="Folder for <id>.mp4, <id>.gif, <id>_strip.png."),
           fps: Optional[float] = typer.Option(None, help="Playback rate (default: the one animated for)."),
           gif_width: Optional[int] = typer.Option(None, help="Scale the gif down to this width."),
           strip: int = typer.Option(8, help="Frames in the strip.")) -> None:
    """mp4 (H.264), a looping gif and a strip of frames per clip."""
    from reelworks.t2v.export import export as run

    result = run(clips, output, fps=fps, gif_width=gif_width, strip=strip)
    typer.echo(f"{len(result['clips'])} clip(s) as mp4, gif and strip -> {output}")


@app.command()
def evaluate(clips: str = typer.Option(..., help="An `animate` output."),
             videos: str = typer.Option(..., help="Its `export` output."),
             output: str = typer.Option(..., "--output", "-o", help="Folder for the gallery report and evaluation.json."),
             prompts: Optional[str] = typer.Option(None, help="The `embed` output (nearest descriptions, embeddings)."),
             clip_model: str = typer.Option("auto", help="CLIP for text-frame agreement: auto (ViT-B/32; a tiny "
                                                         "random-init one for tiny clips), none, or a Hub id, "
                                                         "folder or s3:// prefix."),
             embed_model: str = typer.Option("minilm", help="Sentence encoder for the prompts' diversity."),
             device: Optional[str] = typer.Option(None)) -> None:
    """Frame count and fps, temporal consistency, prompt diversity, CLIP agreement; a gallery report."""
    from reelworks import storage
    from reelworks.t2v.evaluate import evaluate as run

    result = run(clips, videos, output, prompts=prompts, clip_model=clip_model, embed_model=embed_model, device=device)
    s = result["summary"]
    line = (f"{s['files_ok']}/{s['clips']} clips with the frames and fps asked for; SSIM {s['ssim_mean']:.3f}, "
            f"flow {s['flow_mean']:.3f} px/frame, prompt diversity {s['prompt_diversity']:.3f}")
    if "clip_first" in s:
        line += f"; CLIP first {s['clip_first']:.3f} last {s['clip_last']:.3f}"
    typer.echo(line)
    typer.echo(f"gallery: {storage.join(output, 'report/report.html')}")
