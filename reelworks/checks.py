"""Checks on a pipeline's inputs, run by `kubeflow.check_inputs` before its first step starts.

A pipeline declares them next to its `LOCAL_ARGUMENTS`: `INPUT_CHECKS` maps a parameter to a
check (a dict, or a function returning one, so that the checks may name constants of modules
too heavy to import when the pipeline is only listed or compiled):

    INPUT_CHECKS = {"audio": checks.audio_file, "fps": checks.at_least(0), "n": checks.at_least(1)}

A check takes the parameter's value and raises `ReelworksError` saying what is wrong with it;
`check_inputs` puts the parameter's name in front. Empty strings are KFP's "not given" and
are not checked. Files are looked up where the steps will read them (a local path or s3://).
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

from reelworks.errors import ReelworksError

Check = Callable[[Any], None]


def existing_file(uri: str) -> None:
    """A file (or S3 object) that exists."""
    from reelworks import storage

    if storage.is_s3(uri):
        if not storage.exists(uri):
            raise ReelworksError(f"not found: {uri}")
        return
    path = storage.parse(uri).path
    if not path.exists():
        raise ReelworksError(f"not found: {uri}")
    if not path.is_file():
        raise ReelworksError(f"{uri} is a directory, expected a file")


def _media_file(uri: str, what: str) -> None:
    """A local file FFmpeg opens and finds a `what` stream in; an S3 object is only looked up
    (the step downloads it anyway, checking it here would download it twice)."""
    from reelworks import media, storage

    existing_file(uri)
    if storage.is_s3(uri):
        return
    opener = media.open_audio if what == "audio" else media.open_video
    with opener(storage.parse(uri).path):
        pass


def audio_file(uri: str) -> None:
    """A file with an audio stream FFmpeg can decode."""
    _media_file(uri, "audio")


def video_file(uri: str) -> None:
    """A file with a video stream FFmpeg can decode."""
    _media_file(uri, "video")


def each(check: Check) -> Check:
    """`check` on every item of a list parameter."""

    def check_each(values: Iterable) -> None:
        for value in values:
            check(value)

    return check_each


def at_least(minimum: float) -> Check:
    """A number >= `minimum` (`at_least(0)` where 0 means "the default")."""

    def check_at_least(value: float) -> None:
        if value < minimum:
            raise ReelworksError(f"must be at least {minimum:g}, got {value:g}")

    return check_at_least


def positive(value: float) -> None:
    """A number > 0 (rates, fractions, learning rates)."""
    if not value > 0:
        raise ReelworksError(f"must be greater than 0, got {value:g}")


def between(low: float, high: float) -> Check:
    """A number in [low, high]."""

    def check_between(value: float) -> None:
        if not low <= value <= high:
            raise ReelworksError(f"must be between {low:g} and {high:g}, got {value:g}")

    return check_between


def accepted_by(function: Callable[[Any], object]) -> Check:
    """Whatever `function` (a library's own validation or parser) accepts: its `ValueError`
    becomes the problem, so the rule lives in one place."""

    def check_accepted(value: Any) -> None:
        try:
            function(value)
        except ValueError as exc:
            raise ReelworksError(str(exc)) from None

    return check_accepted


def one_of(choices: Iterable[str]) -> Check:
    """One of `choices`."""
    choices = tuple(choices)

    def check_one_of(value: str) -> None:
        if value not in choices:
            raise ReelworksError(f"expected one of {', '.join(choices)}, got {value!r}")

    return check_one_of
