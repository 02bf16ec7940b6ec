"""`reelworks musicvideo ...`: one command per step, each a thin shell over the library."""
from __future__ import annotations

from typing import List, Optional

import typer

import reelworks.musicvideo

app = typer.Typer(help=reelworks.musicvideo.__doc__, no_args_is_help=True)

PresetOption = typer.Option("tiny", help="tiny, tiny-sdxl (CPU, seconds), sd15 or sdxl; the options below override it.")
ModelOption = typer.Option(None, help="tiny, a Hub id, a local diffusers folder or an s3:// prefix (SD 1.x/2.x, or "
                                      "SDXL with an sdxl preset).")
AspectOption = typer.Option(None, help="1:1, 16:9 or 9:16: the preset's native size for it (default: 1:1, or what "
                                       "--height/--width give); with one of them the other follows. Never stretched.")
StepsOption = typer.Option(None, help="Denoising steps (keyframes and interpolation must match).")
GuidanceOption = typer.Option(None, help="Classifier-free guidance scale.")
HeightOption = typer.Option(None, help="Frame height (multiple of 8).")
WidthOption = typer.Option(None, help="Frame width (multiple of 8).")
BatchOption = typer.Option("auto", help="Frames per device call (auto: 16 on GPU, 8 on CPU); keep it the same "
                                        "for keyframes and interpolate so keyframes match bit for bit.")
DeviceOption = typer.Option(None, help="cpu, cuda or cuda:N (default: cuda when there is one).")
EmbeddingsOption = typer.Option("lerp", help="How text embeddings move between prompts: lerp or slerp.")


def _render_settings(preset: str, aspect, model, steps, guidance, height, width) -> dict:
    from reelworks.musicvideo.presets import render_settings

    return render_settings(preset, aspect, model=model, steps=steps, guidance=guidance, height=height, width=width)


@app.command()
def song(output: str = typer.Option(..., help="Folder or s3:// prefix for song.wav, song.lrc and song.json."),
         bpm: float = typer.Option(120.0, help="Tempo of the click track.")) -> None:
    """Synthesise the demo song: a click track at a known tempo, one tone per lyric line, and its LRC."""
    from reelworks.musicvideo.song import write_demo_song

    out = write_demo_song(output, bpm=bpm)
    typer.echo(f"{out['duration_s']:.1f} s at {bpm:g} BPM -> {out['audio']} + {out['lyrics']}")


@app.command()
def plan(lyrics: str = typer.Option(..., help="Lyrics: LRC (timed lines) or plain text, one line per lyric line."),
         output: str = typer.Option(..., help="Folder or s3:// prefix for plan.json, prompts.csv, report/."),
         brief: str = typer.Option("", help="What the video should be about or look like."),
         rounds: int = typer.Option(3, help="At most this many feedback rounds on the LLM's pitches, one per line of --feedback."),
         feedback: Optional[str] = typer.Option(None, help="Feedback file, one note per round (without one: no feedback rounds)."),
         plan_from: Optional[str] = typer.Option(None, "--plan-from", help="An edited prompts.csv or plan.json to use as is (no LLM)."),
         sections: int = typer.Option(5, help="Sections of the plot."),
         llm: bool = typer.Option(True, "--llm/--no-llm", help="Use the configured LLM (REELWORKS_LLM_*), "
                                                               "else the deterministic template."),
         max_tokens: Optional[int] = typer.Option(None, help="Cap on each LLM answer's tokens.")) -> None:
    """Lyrics -> plot, sections and one Stable Diffusion scene per lyric line (checked)."""
    from reelworks.musicvideo.plan import make_plan

    out = make_plan(lyrics, output, brief=brief, rounds=rounds, feedback=feedback, plan_from=plan_from,
                    sections=sections, use_llm=llm, max_tokens=max_tokens)
    p = out["plan"]
    typer.echo(f"{len(p.scenes)} scenes in {len(p.sections)} sections ({p.source}) -> {output}")


@app.command()
def timing(audio: str = typer.Option(..., help="The song (any format FFmpeg reads)."),
           plan: str = typer.Option(..., help="A `musicvideo plan` output (folder or plan.json)."),
           output: str = typer.Option(..., help="Folder or s3:// prefix for timeline.json and report/."),
           fps: Optional[float] = typer.Option(None, help="Frames per second (default: the preset's)."),
           preset: str = PresetOption,
           snap: str = typer.Option("beats", help="Snap keyframes to beats, onsets or none."),
           energy: float = typer.Option(0.5, help="0-1: how much the song's energy paces the walk.")) -> None:
    """Beats, onsets and line times -> one global frame grid and the exact audio slice."""
    from reelworks.musicvideo.presets import resolve
    from reelworks.musicvideo.timing import timing as run

    out = run(audio, plan, output, fps or resolve(preset)["fps"], snap=snap, energy=energy)
    tl = out["timeline"]
    typer.echo(f"{len(tl['keyframes'])} keyframes, {tl['frames']} frames at {tl['fps']:g} fps, "
               f"tempo {tl['tempo_bpm']:.1f} BPM -> {output}")


@app.command()
def keyframes(timeline: str = typer.Option(..., help="A `musicvideo timing` output."),
              output: str = typer.Option(..., help="Folder or s3:// prefix for the renders and the contact sheet."),
              preset: str = PresetOption, aspect: Optional[str] = AspectOption, model: Optional[str] = ModelOption,
              steps: Optional[int] = StepsOption, guidance: Optional[float] = GuidanceOption,
              height: Optional[int] = HeightOption, width: Optional[int] = WidthOption, batch_size: str = BatchOption,
              device: Optional[str] = DeviceOption, embeddings: str = EmbeddingsOption,
              reroll: Optional[List[str]] = typer.Option(
                  None, help="Re-roll keyframe N: N (next seed), N:seed=S, N:prompt=TEXT or N:seed=S:prompt=TEXT; "
                             "repeat it or separate with ';'. Then walk OUTPUT's timeline.json.")) -> None:
    """One render per keyframe, as a contact sheet, before the expensive pass (re-roll any here)."""
    from reelworks.musicvideo.keyframes import keyframes as run

    out = run(timeline, output, batch_size=batch_size, device=device, embeddings=embeddings, reroll=reroll,
              **_render_settings(preset, aspect, model, steps, guidance, height, width))
    rerolled = [kf["index"] for kf in out["timeline"]["keyframes"] if "rerolled_from" in kf]
    typer.echo(f"{len(out['keyframes'])} keyframes -> {output}"
               + (f" (re-rolled: {','.join(map(str, rerolled))}; walk --timeline {output})" if rerolled else ""))


@app.command()
def interpolate(timeline: str = typer.Option(..., help="A `musicvideo keyframes` output (its timeline.json holds "
                                                           "the re-rolls) or a `musicvideo timing` one."),
                output: str = typer.Option(..., help="Folder or s3:// prefix for segments/ (frames cached by content: "
                                                     "a rerun renders only changed segments) and chunks/ (resumable)."),
                preset: str = PresetOption, aspect: Optional[str] = AspectOption,
                model: Optional[str] = ModelOption, steps: Optional[int] = StepsOption,
                guidance: Optional[float] = GuidanceOption, height: Optional[int] = HeightOption,
                width: Optional[int] = WidthOption, batch_size: str = BatchOption,
                chunk: int = typer.Option(16, help="Frames per chunk (the most a pre-empted job loses)."),
                shard: int = typer.Option(0, help="This worker's share of the chunks (0-based)."),
                shards: int = typer.Option(1, help="Workers sharing the chunks."),
                device: Optional[str] = DeviceOption, embeddings: str = EmbeddingsOption,
                offload: bool = typer.Option(False, help="CPU offload (large models on small GPUs)."),
                slicing: bool = typer.Option(False, help="Attention and VAE slicing (less memory).")) -> None:
    """Walk Stable Diffusion between the keyframes' embeddings and seeds: every frame of the grid."""
    from reelworks.musicvideo.interpolate import interpolate as run

    out = run(timeline, output, batch_size=batch_size, chunk=chunk, shard=shard, shards=shards, device=device,
              embeddings=embeddings, offload=offload, slicing=slicing,
              **_render_settings(preset, aspect, model, steps, guidance, height, width))
    typer.echo(f"{len(out['rendered'])} chunks rendered, {len(out['skipped'])} already done "
               f"({out['chunks']} chunks, {out['frames']} frames) -> {output}")
    typer.echo(f"frames rendered: {out['frames_rendered']}; frames reused: {out['frames_reused']}")
    typer.echo(f"rendered chunks: {','.join(map(str, out['rendered'])) or '-'}; "
               f"skipped chunks: {','.join(map(str, out['skipped'])) or '-'}")


@app.command()
def render(frames: List[str] = typer.Option(..., help="`musicvideo interpolate` output(s) (repeat for shards)."),
           timeline: str = typer.Option(..., help="The `musicvideo timing` output the frames follow."),
           audio: str = typer.Option(..., help="The song the timeline was made from."),
           output: str = typer.Option(..., help="Folder or s3:// prefix for video.mp4, preview.gif, report/."),
           allow_partial: bool = typer.Option(False, help="Render even with missing frames or drift (repeats frames)."),
           crf: int = typer.Option(18, help="x264 quality (lower: better, larger)."),
           x264_preset: str = typer.Option("veryfast", help="x264 speed preset."),
           output_fps: float = typer.Option(0.0, help="Video frame rate, filled between the keyframe-rate frames "
                                                      "by --interpolator (0: the timeline's rate)."),
           interpolator: str = typer.Option("flow", help="flow (optical flow warp) or blend (cross-fade)."),
           upscale: int = typer.Option(1, help="1 (off), 2 or 4: each frame enlarged by a learned upscaler."),
           upscaler: str = typer.Option("", help="The upscaler: a Swin2SR Hub id, save_pretrained folder or s3:// "
                                                 "prefix (default: Swin2SR classical x2 / real-world x4)."),
           device: Optional[str] = DeviceOption) -> None:
    """Frames in grid order + the song's exact slice -> video.mp4 (H.264 + AAC), preview.gif and
    qa.json (the video's self-check)."""
    from reelworks.musicvideo.qa import describe
    from reelworks.musicvideo.render import render as run

    out = run(frames, timeline, audio, output, allow_partial=allow_partial, crf=crf, preset=x264_preset,
              output_fps=output_fps, interpolator=interpolator, upscale=upscale, upscaler=upscaler, device=device)
    typer.echo(f"{out['frames']} frames at {out['fps']:g} fps, video {out['video_s']:.3f} s, "
               f"audio {out['audio_s']:.3f} s -> {out['video']}")
    typer.echo(f"{describe(out['qa_result'])} -> {out['qa']}")
