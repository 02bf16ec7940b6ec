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
    scripted_llm.answer(plan_answer([0, 0, 2]))   # line 0 twice and line 1 missing: the schema pins each line
    scripted_llm.answer(plan_answer([0, 1, 2]))   # the repair
    code, out = run_cli("musicvideo", "plan", "--lyrics", lyrics_file, "--output", str(tmp_path / "plan"),
                        "--feedback", str(feedback), "--rounds", "2", "--sections", "2")
    assert code == 0, out
    requests = scripted_llm.chat_requests
    assert len(requests) == 5 and scripted_llm.pending == 0
    texts = [json.dumps(r["messages"]) for r in requests]
    assert "more grim" in texts[1] and "less story, concrete scenes" in texts[2]
    assert all("2: Lights go out" in t for t in texts)  # the lyrics travel with every request
    assert "at scenes/1/lyric: 'A kettle sings' was expected" in requests[4]["messages"][-1]["content"]
    plan = json.loads((tmp_path / "plan" / "plan.json").read_text())
    assert plan["source"] == "llm" and [s["line"] for s in plan["scenes"]] == [0, 1, 2]
    assert [s["time_s"] for s in plan["scenes"]] == [1.0, 3.0, 5.0]
    assert [s["seed"] for s in plan["scenes"]] == [1000, 1001, 1002]  # the code's seeds, not the LLM's 40+i
    assert [s["section"] for s in plan["scenes"]] == [0, 0, 1] and scripted_llm.refused == 0
    scenes = requests[3]["response_format"]["json_schema"]["schema"]["properties"]["scenes"]["prefixItems"]
    assert [(s["properties"]["line"]["const"], s["properties"]["lyric"]["const"]) for s in scenes] == \
        list(enumerate(LINES))  # a schema-enforcing server cannot skip, repeat or invent a line
    transcript = json.loads((tmp_path / "plan" / "transcript.json").read_text())
    assert len(transcript["exchanges"]) == 5
    report = (tmp_path / "plan" / "report" / "report.md").read_text()
    assert "Feedback: more grim" in report and "passed its checks" in report


def test_planner_fails_clearly_when_the_repair_fails_too(scripted_llm, lyrics_file, tmp_path):
    scripted_llm.answer(pitches(0))
    scripted_llm.always(plan_answer([0, 1, 1]))
    code, out = run_cli("musicvideo", "plan", "--lyrics", lyrics_file, "--output", str(tmp_path / "plan"),
                        "--rounds", "0", "--sections", "2")
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "Traceback" not in out
    assert "did not match its JSON schema after one retry" in errors[0] and "scenes/2" in errors[0]
    assert not (tmp_path / "plan").exists()


def test_plan_check_failures_go_back_once(scripted_llm, lyrics_file, tmp_path):
    """A schema-valid plan that fails the plan's own checks (a blank prompt) gets one repair round."""
    blank = plan_answer([0, 1, 2])
    blank["scenes"][1]["prompt"] = "   "
    scripted_llm.answer(pitches(0)).answer(blank).answer(plan_answer([0, 1, 2]))
    code, out = run_cli("musicvideo", "plan", "--lyrics", lyrics_file, "--output", str(tmp_path / "plan"),
                        "--sections", "2")
    assert code == 0, out
    assert "scene 2: empty prompt" in scripted_llm.chat_requests[2]["messages"][-1]["content"]
    report = (tmp_path / "plan" / "report" / "report.md").read_text()
    assert "failed 1 checks" in report and "passed its checks" in report


def test_planner_llm_that_keeps_answering_invalid_json(scripted_llm, lyrics_file, tmp_path):
    scripted_llm.always("Sure! Here is a lovely plan for your video: a kitchen, some rain.")
    code, out = run_cli("musicvideo", "plan", "--lyrics", lyrics_file, "--output", str(tmp_path / "plan"),
                        "--rounds", "1")
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    # The first call (the pitches) already fails: the answer and its one retry, both prose.
    assert code == 2 and len(errors) == 1 and "Traceback" not in out
    assert errors[0] == ("error: the LLM's answer for 'pitches' did not match its JSON schema after one retry: "
                         "the answer is not JSON (no JSON object in the answer)")
    assert len(scripted_llm.chat_requests) == 2
    assert not (tmp_path / "plan").exists()


@pytest.mark.slow  # a few seconds on idle cores; generation slows down a lot on busy ones
def test_planner_against_a_strict_llama_cpp_server(llamacpp_server, tmp_path):
    """SmolLM2-135M behind llama.cpp's server with a strict (Mistral/Gemma-like) chat template
    and grammar-enforced json_schema: no request is refused, and the plan is valid."""
    from reelworks.musicvideo.plan import make_plan

    path = tmp_path / "song.lrc"
    path.write_text("[00:01.00]Rain on the glass\n")
    client = llamacpp_server.client(timeout=600, max_retries=0)
    out = make_plan(str(path), str(tmp_path / "plan"), sections=1, client=client, max_tokens=300)
    plan = json.loads((tmp_path / "plan" / "plan.json").read_text())
    assert plan["source"] == "llm" and [s["lyric"] for s in plan["scenes"]] == ["Rain on the glass"]
    assert plan["scenes"][0]["prompt"].strip() and plan["scenes"][0]["seed"] == 1000
    assert out["plan"].rounds[-1]["problems"] == []
    statuses = [a["status"] for e in client.transcript for a in e["attempts"]]
    assert statuses == [200, 200] and client.json_mode == "json_schema"  # pitches, plan: 0 refused
    assert all([m["role"] for m in e["request"]["messages"]][:2] == ["system", "user"] for e in client.transcript)


def long_song(minutes: float = 5.5, lines: int = 66) -> tuple[str, list[str]]:
    texts = [f"Verse line number {i} of the long song" for i in range(lines)]
    step = minutes * 60 / lines
    return "".join(f"[{int(i * step // 60):02d}:{i * step % 60:05.2f}]{t}\n" for i, t in enumerate(texts)), texts


def scenes_for(request: dict) -> dict:
    """A scripted answer for a scenes request: one scene per line the request's schema pins."""
    schema = request["response_format"]["json_schema"]["schema"]
    pinned = schema["properties"]["scenes"]["prefixItems"]
    scenes = [{"line": item["properties"]["line"]["const"], "lyric": item["properties"]["lyric"]["const"],
               "prompt": f"a desert road at night, scene {item['properties']['line']['const']}",
               "negative_prompt": "blurry"} for item in pinned]
    return {"scenes": scenes}


def test_long_song_is_planned_section_by_section(scripted_llm, tmp_path):
    from reelworks.musicvideo.plan import make_plan

    text, texts = long_song()
    path = tmp_path / "long.lrc"
    path.write_text(text)
    outline = {"title": "Long Road", "plot": "A drive through one night.",
               "sections": [{"name": n, "description": f"{n} light"} for n in ("Dusk", "Night", "Dawn")]}
    scripted_llm.answer(pitches(0)).answer(outline).always(scenes_for)
    out = make_plan(str(path), str(tmp_path / "plan"), sections=3, client=scripted_llm.client())
    requests = scripted_llm.chat_requests
    assert len(requests) == 2 + 3 and scripted_llm.refused == 0  # pitches, outline, one per section
    asked = [[item["properties"]["line"]["const"] for item in
              r["response_format"]["json_schema"]["schema"]["properties"]["scenes"]["prefixItems"]]
             for r in requests[2:]]
    assert asked == [list(range(0, 22)), list(range(22, 44)), list(range(44, 66))]
    assert '"Night": Night light' in requests[3]["messages"][-1]["content"]
    assert "A drive through one night." in requests[3]["messages"][-1]["content"]
    plan = out["plan"]
    assert [s.lyric for s in plan.scenes] == texts and [s.section for s in plan.scenes][21:23] == [0, 1]
    assert [s["name"] for s in plan.sections] == ["Dusk", "Night", "Dawn"] and plan.title == "Long Road"


def test_no_feedback_means_no_feedback_rounds(scripted_llm, lyrics_file, tmp_path):
    """Without --feedback no notes are invented ("grimmer" on every song): pitches, then the plan."""
    scripted_llm.answer(pitches(0)).answer(plan_answer([0, 1, 2]))
    code, out = run_cli("musicvideo", "plan", "--lyrics", lyrics_file, "--output", str(tmp_path / "plan"),
                        "--rounds", "3", "--sections", "2")
    assert code == 0, out
    assert len(scripted_llm.chat_requests) == 2 and "Feedback:" not in json.dumps(scripted_llm.chat_requests)


def test_planner_falls_back_to_the_template_when_no_llm_answers(unused_port, lyrics_file, tmp_path, caplog):
    from reelworks.llm import LLMClient
    from reelworks.musicvideo.plan import make_plan

    client = LLMClient(f"http://127.0.0.1:{unused_port}/v1", "any", max_retries=1, backoff=0.01, timeout=2)
    with caplog.at_level("WARNING", logger="reelworks.musicvideo.plan"):
        out = make_plan(lyrics_file, str(tmp_path / "plan"), sections=2, client=client)
    assert out["plan"].source == "template" and [s.lyric for s in out["plan"].scenes] == LINES
    said = [r.getMessage() for r in caplog.records if r.name == "reelworks.musicvideo.plan"]
    assert len(said) == 1 and "No LLM answered" in said[0] and "template" in said[0] and "\n" not in said[0]


def test_a_refusal_is_not_a_reason_for_the_template(scripted_llm, lyrics_file, tmp_path):
    scripted_llm.error(401, "invalid api key")
    code, out = run_cli("musicvideo", "plan", "--lyrics", lyrics_file, "--output", str(tmp_path / "plan"))
    assert code == 2 and "HTTP 401" in out and not (tmp_path / "plan").exists()
