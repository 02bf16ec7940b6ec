"""The planner against OpenAI-compatible servers: the scripted one (every path, exactly) and
the real small model (SmolLM2-135M-Instruct) of the generative core."""
from __future__ import annotations

import json

import pytest
from cli_helpers import run_cli

LYRICS = "[00:01.00]Rain on the glass\n[00:03.00]A kettle sings\n[00:05.00]Lights go out\n"
LINES = ["Rain on the glass", "A kettle sings", "Lights go out"]


def pitches(n: int) -> dict:
    return {"pitches": [{"title": f"Idea {n}", "idea": f"a kitchen at night, take {n}"}]}


def plan_answer(lines: list[int]) -> dict:
    return {"title": "Kitchen", "plot": "A night in a kitchen as a storm cuts the power.",
            "sections": [{"name": "Storm", "description": "rain"}, {"name": "Dark", "description": "no light"}],
            "scenes": [{"line": i, "lyric": LINES[i], "section": 0 if i < 2 else 1,
                        "prompt": f"kitchen window, scene {i}, rain, cinematic", "negative_prompt": "blurry",
                        "seed": 40 + i} for i in lines]}


@pytest.fixture
def lyrics_file(tmp_path):
    path = tmp_path / "song.lrc"
    path.write_text(LYRICS)
    return str(path)


def test_planner_rounds_checks_and_one_repair(scripted_llm, lyrics_file, tmp_path):
    feedback = tmp_path / "feedback.txt"
    feedback.write_text("more grim\n\nless story, concrete scenes\n")
    scripted_llm.answer(pitches(0)).answer(pitches(1)).answer(pitches(2))
    scripted_llm.answer(plan_answer([0, 0, 2]))   # schema-valid, but line 0 twice and line 1 missing
    scripted_llm.answer(plan_answer([0, 1, 2]))   # the repair
    code, out = run_cli("musicvideo", "plan", "--lyrics", lyrics_file, "--output", str(tmp_path / "plan"),
                        "--feedback", str(feedback), "--rounds", "2", "--sections", "2")
    assert code == 0, out
    requests = scripted_llm.chat_requests
    assert len(requests) == 5 and scripted_llm.pending == 0
    texts = [json.dumps(r["messages"]) for r in requests]
    assert "more grim" in texts[1] and "less story, concrete scenes" in texts[2]
    assert all("2: Lights go out" in t for t in texts)  # the lyrics travel with every request
    assert "line 1 ('A kettle sings') has no scene" in requests[4]["messages"][-1]["content"]
    plan = json.loads((tmp_path / "plan" / "plan.json").read_text())
    assert plan["source"] == "llm" and [s["line"] for s in plan["scenes"]] == [0, 1, 2]
    assert [s["time_s"] for s in plan["scenes"]] == [1.0, 3.0, 5.0] and plan["scenes"][2]["seed"] == 42
    transcript = json.loads((tmp_path / "plan" / "transcript.json").read_text())
    assert len(transcript["exchanges"]) == 5
    report = (tmp_path / "plan" / "report" / "report.md").read_text()
    assert "Feedback: more grim" in report and "failed 2 checks" in report and "passed its checks" in report


def test_planner_fails_clearly_when_the_repair_fails_too(scripted_llm, lyrics_file, tmp_path):
    scripted_llm.answer(pitches(0))
    scripted_llm.always(plan_answer([0, 1, 1]))
    code, out = run_cli("musicvideo", "plan", "--lyrics", lyrics_file, "--output", str(tmp_path / "plan"),
                        "--rounds", "0", "--sections", "2")
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "Traceback" not in out
    assert "still fails its checks after one repair round" in errors[0] and "line 1" in errors[0]
    assert not (tmp_path / "plan").exists()


def test_planner_llm_that_keeps_answering_invalid_json(scripted_llm, lyrics_file, tmp_path):
    scripted_llm.always("Sure! Here is a lovely plan for your video: a kitchen, some rain.")
    code, out = run_cli("musicvideo", "plan", "--lyrics", lyrics_file, "--output", str(tmp_path / "plan"),
                        "--rounds", "1")
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "Traceback" not in out and "JSON" in errors[0]
    assert not (tmp_path / "plan").exists()


@pytest.mark.slow
def test_planner_against_a_real_small_model(llm_server, tmp_path):
    """SmolLM2-135M through `transformers serve`: real HTTP, a real model's answer. A model this
    small rarely writes a whole plan (it rambles past the token cap): whatever it writes, the step
    ends in a checked plan, or in one clear line with nothing written. max_tokens keeps it short."""
    from reelworks.errors import ReelworksError
    from reelworks.musicvideo.plan import make_plan

    path = tmp_path / "song.lrc"
    path.write_text("[00:01.00]Rain on the glass\n")
    client = llm_server.client()
    try:
        out = make_plan(str(path), str(tmp_path / "plan"), rounds=0, sections=1, client=client, max_tokens=64)
    except ReelworksError as exc:
        message = str(exc)
        assert "\n" not in message and ("JSON" in message or "checks" in message or "cut off" in message), message
        assert not (tmp_path / "plan").exists()
    else:
        plan = json.loads((tmp_path / "plan" / "plan.json").read_text())
        assert [s["lyric"] for s in plan["scenes"]] == ["Rain on the glass"]
        assert plan["source"] == "llm" and out["plan"].rounds[-1]["problems"] == []
        assert (tmp_path / "plan" / "transcript.json").is_file()
    # It really talked to the model, and the lyrics went with the request.
    assert client.transcript and "0: Rain on the glass" in json.dumps(client.transcript[0]["request"])
