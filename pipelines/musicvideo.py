"""Music video: lyrics -> LLM plan -> beat-synced timeline -> keyframes -> Stable Diffusion walk -> video + report.

plan -> timing -> keyframes -> interpolate (one task per shard, ParallelFor, 1 GPU each) ->
render -> report. With no parameters (`reelworks run musicvideo --local`) it makes the
project's own demo song (a click track at 120 BPM with one tone per lyric line, and its LRC)
and renders it on the tiny preset on CPU. `work_uri` (an s3:// prefix) keeps the frames where
a retried interpolate task finds its finished chunks, and caches them by content: a rerun with
an edited plan (`plan_from`) or a re-rolled keyframe (`reroll`, e.g. "3:seed=7;5:prompt=a red
door") renders only the segments next to what changed. `aspect` (1:1, 16:9, 9:16) picks the
preset's native size for that ratio. `output_fps` (0: the keyframe rate) fills
the video to that rate between the walk's frames (`interpolator`: flow or blend); `upscale` 2 or 4
enlarges the frames with a learned upscaler (`upscaler`: Hub id, folder or s3://), and render
then runs on a GPU; render checks its own video (`qa.json`: unplanned cuts, black, frozen,
flicker, A/V offset).
"""
from kfp import dsl

from reelworks import kubeflow
from reelworks.components import musicvideo as mv


def LOCAL_ARGUMENTS() -> dict:
    """The synthetic demo song and its LRC, made once in the cache; one feedback round."""
    from reelworks.musicvideo.song import write_demo_song
    from reelworks.settings import cache_dir

    folder = cache_dir() / "musicvideo" / "demo-song"
    if not (folder / "song.lrc").is_file() or not (folder / "song.wav").is_file():
        write_demo_song(str(folder))
    return {"audio": str(folder / "song.wav"), "lyrics": str(folder / "song.lrc"), "rounds": 1}


def INPUT_CHECKS() -> dict:
    """Checked before the first step (0 and "" mean the preset's value or the default)."""
    from reelworks import checks
    from reelworks.diffusion import batch_size_of
    from reelworks.frame_interpolation import INTERPOLATORS
    from reelworks.upscale import check_factor
    from reelworks.musicvideo.keyframes import parse_rerolls
    from reelworks.musicvideo.presets import ASPECTS, PRESETS
    from reelworks.musicvideo.timing import SNAP_MODES

    return {"audio": checks.audio_file, "lyrics": checks.existing_file, "plan_from": checks.existing_file,
            "fps": checks.at_least(0), "preset": checks.one_of(PRESETS), "steps": checks.at_least(0),
            "guidance": checks.at_least(0), "height": checks.at_least(0), "width": checks.at_least(0),
            "batch_size": checks.accepted_by(lambda value: batch_size_of(value, 1)), "chunk": checks.at_least(1),
            "interpolate_workers": checks.at_least(1), "rounds": checks.at_least(0),
            "sections": checks.at_least(1), "llm_max_tokens": checks.at_least(0),
            "snap": checks.one_of(SNAP_MODES), "energy": checks.between(0, 1),
            "aspect": checks.one_of(ASPECTS), "reroll": parse_rerolls,
            "output_fps": checks.at_least(0), "interpolator": checks.one_of(INTERPOLATORS),
            "upscale": checks.accepted_by(check_factor)}


@dsl.pipeline(name="musicvideo", description=__doc__.splitlines()[0])
def pipeline(audio: str, lyrics: str, fps: float = 0.0, preset: str = "tiny", model: str = "", steps: int = 0,
             guidance: float = 0.0, height: int = 0, width: int = 0, batch_size: str = "auto", chunk: int = 16,
             interpolate_workers: int = 1, work_uri: str = "", brief: str = "", rounds: int = 3,
             feedback: str = "", plan_from: str = "", sections: int = 5, use_llm: bool = True,
             llm_base_url: str = "", llm_model: str = "", llm_max_tokens: int = 0, snap: str = "beats",
             energy: float = 0.5, allow_partial: bool = False, aspect: str = "", reroll: str = "",
             output_fps: float = 0.0,
             interpolator: str = "flow", upscale: int = 1, upscaler: str = ""):
    plan = mv.plan_scenes(lyrics=lyrics, brief=brief, rounds=rounds, feedback=feedback, plan_from=plan_from,
                          sections=sections, use_llm=use_llm, llm_base_url=llm_base_url, llm_model=llm_model,
                          llm_max_tokens=llm_max_tokens)
    kubeflow.with_llm(kubeflow.with_s3(plan))
    timing = kubeflow.with_s3(mv.song_timing(audio=audio, plan=plan.outputs["plan"], fps=fps, preset=preset,
                                             snap=snap, energy=energy))
    render_args = dict(preset=preset, model=model, steps=steps, guidance=guidance, height=height, width=width,
                       batch_size=batch_size, aspect=aspect)
    keyframes = mv.render_keyframes(timeline=timing.outputs["timeline"], reroll=reroll, **render_args)
    kubeflow.on_gpu(kubeflow.with_s3(keyframes), 1)
    shards = mv.shard_numbers(shards=interpolate_workers)
    with dsl.ParallelFor(shards.output) as shard:
        # The keyframes step's timeline: the timing's with the re-rolled keyframes.
        interpolate = mv.interpolate_frames(timeline=keyframes.outputs["keyframes"], shard=shard,
                                            shards=interpolate_workers, work_uri=work_uri, chunk=chunk,
                                            **render_args)
        kubeflow.on_gpu(kubeflow.with_s3(interpolate), 1)
        interpolate.after(keyframes)  # judge the keyframes' report before the expensive pass starts

    def render_and_report(gpu: bool) -> None:
        video = mv.render_video(frames=dsl.Collected(interpolate.outputs["Output"]),
                                timeline=timing.outputs["timeline"], audio=audio, allow_partial=allow_partial,
                                output_fps=output_fps, interpolator=interpolator, upscale=upscale, upscaler=upscaler)
        kubeflow.with_s3(video)
        if gpu:
            kubeflow.on_gpu(video, 1)
        report = mv.musicvideo_report(plan=plan.outputs["plan"], timeline=timing.outputs["timeline"],
                                      keyframes=keyframes.outputs["keyframes"], video=video.outputs["video"])
        kubeflow.with_s3(report)

    # The optical-flow fill, the encoding and the self-check run on the CPU; the learned upscaler
    # wants a GPU. Two branches rather than one task with a choice of outputs: kfp.local cannot
    # run dsl.OneOf over artifacts (kfp 2.17).
    with dsl.If(upscale == 1, name="render-on-cpu"):
        render_and_report(gpu=False)
    with dsl.Else(name="render-upscaled-on-gpu"):
        render_and_report(gpu=True)
