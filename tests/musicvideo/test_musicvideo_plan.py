"""Lyrics parsing, the plan's checks, the template plan and the prompts.csv round trip."""
from __future__ import annotations

import csv
import io
import json

import pytest

from reelworks.errors import ReelworksError
from reelworks.musicvideo import lyrics
from reelworks.musicvideo.plan import Plan, Scene, check, from_csv, template_plan, to_csv, token_counter
from cli_helpers import run_cli




LRC = """[ti:Test]
[ar:Nobody]
[offset:+500]
[00:12.00]Second line
[00:05.50][00:20.25]Chorus line, twice
[00:01.00]First line
[00:30.00]
"""


def test_lrc_lines_sorted_repeated_and_offset():
    lines = lyrics.parse(LRC)
    assert [line.text for line in lines] == ["First line", "Chorus line, twice", "Second line", "Chorus line, twice"]
    # [offset:+500] shows lyrics 0.5 s earlier; the empty [00:30.00] gap marker is no scene.
    assert [line.time_s for line in lines] == [0.5, 5.0, 11.5, 19.75]
    assert [line.index for line in lines] == [0, 1, 2, 3]


def test_plain_lyrics_skip_blank_lines_and_section_markers():
    lines = lyrics.parse("[Verse 1]\nOne  line\n\n(Chorus)\nTwo line\n")
    assert [(line.text, line.time_s) for line in lines] == [("One line", None), ("Two line", None)]


@pytest.mark.parametrize("text", ["", "\n\n  \n", "[Chorus]\n\n", "[ti:x]\n[00:01.00]\n"])
def test_no_lyric_lines_is_an_error(text):
    with pytest.raises(ReelworksError, match="no lyric lines"):
        lyrics.parse(text, source="song.lrc")


@pytest.fixture(scope="module")
def count_tokens():
    return token_counter()


def test_template_plan_covers_every_line_once_within_77_tokens(count_tokens):
    lines = lyrics.parse("\n".join(f"line number {i} of the song" for i in range(12)))
    plan = template_plan(lines, sections=5)
    assert check(plan, lines, count_tokens) == []
    assert [s.line for s in plan.scenes] == list(range(12))
    assert len(plan.sections) == 5 and sorted({s.section for s in plan.scenes}) == [0, 1, 2, 3, 4]
    assert len({s.seed for s in plan.scenes}) == 12
    assert plan.source == "template"


def test_check_catches_invented_missing_duplicate_and_long_prompts(count_tokens):
    lines = lyrics.parse("alpha\nbeta\ngamma")
    plan = template_plan(lines, sections=2)
    plan.scenes[1] = Scene(1, "a line nobody sang", 0, "a prompt", "", 1)
    plan.scenes[2] = Scene(0, "alpha", 1, "word " * 90, "", 2)
    problems = check(plan, lines, count_tokens)
    text = "\n".join(problems)
    assert "invented line 'a line nobody sang'" in text
    assert "over the 77-token limit" in text
    assert "line 0 ('alpha') has 2 scenes" in text
    assert "line 2 ('gamma') has no scene" in text


def test_prompts_csv_round_trip(count_tokens):
    lines = lyrics.parse("[00:01.00]Rain on the glass\n[00:03.50]A kettle sings\n[00:06.00]Lights go out\n")
    plan = template_plan(lines, sections=2)
    plan.scenes[1].prompt = 'a kettle, "steam", on a stove, 1970s kitchen'  # quotes and commas survive
    text = to_csv(plan)
    back = from_csv(text, lines)
    assert check(back, lines, count_tokens) == []
    assert [(s.line, s.lyric, s.prompt, s.negative_prompt, s.seed) for s in back.scenes] == \
        [(s.line, s.lyric, s.prompt, s.negative_prompt, s.seed) for s in plan.scenes]
    assert [back.sections[s.section]["name"] for s in back.scenes] == \
        [plan.sections[s.section]["name"] for s in plan.scenes]


def test_prompts_csv_lenient_columns(count_tokens):
    lines = lyrics.parse("Rain on the glass\nA kettle sings")
    text = "Lyrics,Image_Prompt,Negative Prompt\nRain on the glass,wet window at night,blurry\nA kettle sings,steam,\n"
    plan = from_csv(text, lines)
    assert check(plan, lines, count_tokens) == []
    assert [s.prompt for s in plan.scenes] == ["wet window at night", "steam"]
    assert plan.scenes[0].negative_prompt == "blurry" and plan.scenes[1].seed == 1001


def test_cli_plan_template_writes_plan_csv_and_report(tmp_path, song):
    code, out = run_cli("musicvideo", "plan", "--lyrics", song["lyrics"], "--output", str(tmp_path / "plan"),
                        "--no-llm")
    assert code == 0, out
    plan = json.loads((tmp_path / "plan" / "plan.json").read_text())
    assert plan["source"] == "template" and len(plan["scenes"]) == 6
    assert [s["time_s"] for s in plan["scenes"]] == [line.time_s for line in lyrics.load(song["lyrics"])]
    rows = list(csv.DictReader(io.StringIO((tmp_path / "plan" / "prompts.csv").read_text())))
    assert [r["lyric"] for r in rows] == [s["lyric"] for s in plan["scenes"]]
    report = (tmp_path / "plan" / "report" / "report.md").read_text()
    assert "No LLM is configured" in report and "deterministic template" in report

    # --plan-from the CSV (edited by hand) skips the LLM and keeps the edit.
    edited = (tmp_path / "plan" / "prompts.csv").read_text().replace("dawn light, quiet", "red umbrellas", 1)
    (tmp_path / "edited.csv").write_text(edited)
    code, out = run_cli("musicvideo", "plan", "--lyrics", song["lyrics"], "--output", str(tmp_path / "plan2"),
                        "--plan-from", str(tmp_path / "edited.csv"))
    assert code == 0, out
    plan2 = json.loads((tmp_path / "plan2" / "plan.json").read_text())
    assert plan2["source"] == "prompts.csv" and "red umbrellas" in plan2["scenes"][0]["prompt"]

    # --plan-from an edited plan.json works the same way; one that no longer fits the lyrics is one line.
    saved = json.loads((tmp_path / "plan" / "plan.json").read_text())
    saved["scenes"][1]["prompt"] = "a lighthouse in fog, cinematic"
    (tmp_path / "edited.json").write_text(json.dumps(saved))
    code, out = run_cli("musicvideo", "plan", "--lyrics", song["lyrics"], "--output", str(tmp_path / "plan3"),
                        "--plan-from", str(tmp_path / "edited.json"))
    assert code == 0, out
    plan3 = json.loads((tmp_path / "plan3" / "plan.json").read_text())
    assert plan3["source"] == "plan.json" and plan3["scenes"][1]["prompt"] == "a lighthouse in fog, cinematic"
    assert [s["seed"] for s in plan3["scenes"]] == [s["seed"] for s in plan["scenes"]]
    del saved["scenes"][2]
    (tmp_path / "short.json").write_text(json.dumps(saved))
    code, out = run_cli("musicvideo", "plan", "--lyrics", song["lyrics"], "--output", str(tmp_path / "plan4"),
                        "--plan-from", str(tmp_path / "short.json"))
    assert code == 2 and "has no scene" in _single_error(out) and not (tmp_path / "plan4").exists()


def _single_error(out: str) -> str:
    lines = [line for line in out.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in out, out
    return lines[0]


def test_bad_input_one_line_and_nothing_written(tmp_path, song):
    empty = tmp_path / "empty.lrc"
    empty.write_text("[ti:nothing]\n\n")
    code, out = run_cli("musicvideo", "plan", "--lyrics", str(empty), "--output", str(tmp_path / "p1"), "--no-llm")
    assert code == 2 and "no lyric lines" in _single_error(out)
    assert not (tmp_path / "p1").exists()

    # A prompts.csv whose lines do not match the lyrics (one invented line).
    bad = "lyric,prompt\nA neon city wakes beneath the rain,city\nA line nobody sang,boat\n"
    (tmp_path / "bad.csv").write_text(bad)
    code, out = run_cli("musicvideo", "plan", "--lyrics", song["lyrics"], "--output", str(tmp_path / "p2"),
                        "--plan-from", str(tmp_path / "bad.csv"))
    line = _single_error(out)
    assert code == 2 and "does not match the lyrics" in line and "invented line" in line
    assert not (tmp_path / "p2").exists()


def test_plan_json_round_trips_through_from_dict():
    lines = lyrics.parse("one\ntwo")
    plan = template_plan(lines)
    assert Plan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan
    with pytest.raises(ReelworksError, match="not a music video plan"):
        Plan.from_dict({"title": "x"})
