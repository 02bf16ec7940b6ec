"""Tempo and beats of click tracks at known tempos (`musicvideo.song.synthesize`), 60-200 BPM.

librosa's own tempo is quantised to whole-hop periods (117.5 BPM for the 120 BPM demo song) and
its prior halves fast tempos (a 180 BPM click track read as 90); `timing.analyse` corrects both.
Measured with `analyse` on 60, 65, ..., 200 BPM and 60, 67, ..., 193 BPM: at most 0.047 BPM
off at 22.05 kHz (0.10 at 16 kHz, 0.05 at 44.1 kHz; with 2 beats a line, a 7 s song of 15
beats, up to 0.46 at 16 kHz, as before the octave checks); before, up to 90 BPM off (and 2.5 at
120). Real multi-instrument songs: test_musicvideo_beats.py and bench/beats.py.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("librosa")

from reelworks.musicvideo.song import synthesize  # noqa: E402
from reelworks.musicvideo.timing import analyse  # noqa: E402


@pytest.mark.parametrize("bpm", [60, 87, 120, 143, 180, 200])
def test_click_track_tempo_within_half_a_bpm_and_every_beat_found(bpm):
    audio, _, facts = synthesize(bpm=bpm)
    found = analyse(audio.astype(np.float64), facts["sample_rate"])
    assert found["tempo_bpm"] == pytest.approx(bpm, abs=0.5)
    # Beats one click apart, not two (a fast tempo read at half speed), and on their clicks: the
    # onset envelope peaks a few ms after a click starts (measured: median 5-9 ms over 60-200
    # BPM; a tracking hop is 23 ms).
    true_beats = np.asarray(facts["beat_times_s"])
    beats = np.asarray(found["beats_s"])
    assert np.median(np.diff(beats)) == pytest.approx(60 / bpm, rel=0.05)
    misses = np.abs(beats[:, None] - true_beats[None, :]).min(axis=1)
    assert np.median(misses) < 0.015
