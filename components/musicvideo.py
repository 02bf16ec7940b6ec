"""Kubeflow components of the music video workflow: each calls one `reelworks.musicvideo` function.

Plan, timeline and keyframes travel as KFP artifacts (their `.path` goes to the library).
Frames are written where a restarted or parallel step can find them: below `work_uri` when
the pipeline names one (an s3:// prefix survives a pre-empted pod, so a retry skips the
finished chunks), else in the step's own artifact; each interpolate task returns the URI it
filled and the render step merges them.
"""
from typing import List

from kfp.dsl import HTML, Dataset, Input, Markdown, Metrics, Output

from reelworks.kubeflow import component


@component("torch")
def plan_scenes(lyrics: str, plan: Output[Dataset], markdown: Output[Markdown], html: Output[HTML],
                metrics: Output[Metrics], brief: str = "", rounds: int = 3, feedback: str = "", plan_from: str = "",
                sections: int = 5, use_llm: bool = True, llm_base_url: str = "", llm_model: str = "",
                llm_max_tokens: int = 0):
    """Lyrics -> plot, sections, one checked scene per lyric line (LLM, template or prompts.csv;
    llm_max_tokens 0: no cap on an answer)."""
    import os

    from reelworks.musicvideo.plan import make_plan

    client = None
    # The pipeline's llm_base_url wins; else the endpoint the chart's ConfigMap names (kubeflow.with_llm).
    base_url = llm_base_url or os.environ.get("REELWORKS_LLM_BASE_URL", "")
    if use_llm and base_url:
        from reelworks.llm import LLMClient

        client = LLMClient(base_url, llm_model or os.environ.get("REELWORKS_LLM_MODEL") or None,
                           api_key=os.environ.get("REELWORKS_LLM_API_KEY"))
    out = make_plan(lyrics, plan.path, brief=brief, rounds=rounds, feedback=feedback or None,
                    plan_from=plan_from or None, sections=sections, client=client, use_llm=use_llm,
                    max_tokens=llm_max_tokens or None)
    out["report"].to_kfp(markdown=markdown, html_output=html, metrics=metrics)


@component("torch")
def song_timing(audio: str, plan: Input[Dataset], timeline: Output[Dataset], markdown: Output[Markdown],
                html: Output[HTML], metrics: Output[Metrics], fps: float = 0.0, preset: str = "tiny",
                snap: str = "beats", energy: float = 0.5):
    """Beats, onsets and line times -> the frame grid and the exact audio slice (fps 0: the preset's)."""
    from reelworks.musicvideo.presets import resolve
    from reelworks.musicvideo.timing import timing

    out = timing(audio, plan.path, timeline.path, fps or resolve(preset)["fps"], snap=snap, energy=energy)
    out["report"].to_kfp(markdown=markdown, html_output=html, metrics=metrics)


@component("torch")
def render_keyframes(timeline: Input[Dataset], keyframes: Output[Dataset], markdown: Output[Markdown],
                     html: Output[HTML], metrics: Output[Metrics], preset: str = "tiny", model: str = "",
                     steps: int = 0, guidance: float = 0.0, height: int = 0, width: int = 0,
                     batch_size: str = "auto", aspect: str = "", reroll: str = ""):
    """One full-quality render per keyframe, as a contact sheet (0/empty: the preset's value),
    with the keyframes `reroll` names made again; `keyframes` holds the timeline the walk follows."""
    from reelworks.musicvideo.keyframes import keyframes as run
    from reelworks.musicvideo.presets import render_settings

    settings = render_settings(preset, aspect, model=model, steps=steps, guidance=guidance, height=height,
                               width=width)
    out = run(timeline.path, keyframes.path, batch_size=batch_size, reroll=reroll, **settings)
    out["report"].to_kfp(markdown=markdown, html_output=html, metrics=metrics)


@component("cpu")
def shard_numbers(shards: int) -> List[int]:
    """0 .. shards-1: one interpolate task per number."""
    return list(range(max(1, shards)))


@component("torch")
def interpolate_frames(timeline: Input[Dataset], frames: Output[Dataset], shard: int = 0, shards: int = 1,
                       work_uri: str = "", preset: str = "tiny", model: str = "", steps: int = 0,
                       guidance: float = 0.0, height: int = 0, width: int = 0, batch_size: str = "auto",
                       chunk: int = 16, aspect: str = "") -> str:
    """This shard's chunks of the walk; returns the URI holding its frames and chunk manifests.
    Below `work_uri` frames are cached by content: a rerun renders only changed segments."""
    from reelworks import storage
    from reelworks.musicvideo.interpolate import interpolate, stats_name
    from reelworks.musicvideo.presets import render_settings

    settings = render_settings(preset, aspect, model=model, steps=steps, guidance=guidance, height=height,
                               width=width)
    target = storage.join(work_uri, "frames") if work_uri else frames.path
    out = interpolate(timeline.path, target, batch_size=batch_size, chunk=chunk, shard=shard, shards=shards,
                      **settings)
    if target != frames.path:  # the step's own artifact holds the counts too
        storage.write_text(storage.join(frames.path, stats_name(shard)),
                           storage.read_text(storage.join(target, stats_name(shard))))
    print(f"shard {shard}/{shards}: {len(out['rendered'])} chunks rendered, {len(out['skipped'])} already done; "
          f"{out['frames_rendered']} frames rendered, {out['frames_reused']} reused")
    return target


@component("torch")
def render_video(frames: List[str], timeline: Input[Dataset], audio: str, video: Output[Dataset],
                 markdown: Output[Markdown], html: Output[HTML], metrics: Output[Metrics],
                 allow_partial: bool = False, output_fps: float = 0.0, interpolator: str = "flow",
                 upscale: int = 1, upscaler: str = "") -> str:
    """Frames in grid order + the song's slice -> video.mp4 (H.264 + AAC), preview.gif and qa.json
    (the self-check); output_fps 0: the keyframe rate, else frames filled by `interpolator`;
    upscale 2/4: frames enlarged by `upscaler` ("" : the default Swin2SR). Returns the video's URI."""
    from reelworks.musicvideo.render import render

    out = render(sorted(set(frames)), timeline.path, audio, video.path, allow_partial=allow_partial,
                 output_fps=output_fps, interpolator=interpolator, upscale=upscale, upscaler=upscaler)
    out["report"].to_kfp(markdown=markdown, html_output=html, metrics=metrics)
    print(f"video: {out['video']}")
    return out["video"]


@component("cpu")
def musicvideo_report(plan: Input[Dataset], timeline: Input[Dataset], keyframes: Input[Dataset],
                      video: Input[Dataset], summary: Output[Dataset], markdown: Output[Markdown],
                      html: Output[HTML], metrics: Output[Metrics]):
    """One page for the run: plot and scenes, the timeline picture, the contact sheet, the video
    (also as `summary/report.html`, a page a browser opens from the artifacts)."""
    from reelworks.musicvideo.summary import summary as make_summary

    report = make_summary(plan.path, timeline.path, keyframes.path, video.path, output=summary.path)
    report.to_kfp(markdown=markdown, html_output=html, metrics=metrics)
    print(f"video: {video.path}/video.mp4")
    print(f"summary: {summary.path}/report.html")
