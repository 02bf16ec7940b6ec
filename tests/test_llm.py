"""reelworks.llm against real HTTP servers on 127.0.0.1: the scripted one for every error path,
and a real small model (SmolLM2-135M-Instruct) for one real exchange."""
from __future__ import annotations

import json
import logging

import pytest

from reelworks.errors import ReelworksError
from reelworks.llm import LLMClient, LLMError, extract_json

PLAN = {"type": "object", "properties": {"title": {"type": "string", "minLength": 1},
                                         "scenes": {"type": "integer", "minimum": 1, "maximum": 9}},
        "required": ["title", "scenes"]}
ASK = [{"role": "user", "content": "Plan a music video."}]
KEY = "sk-test-9f8e7dSecretLLMKey"


# ------------------------------------------------------------------ settings


def test_from_settings_is_none_without_an_endpoint(no_llm):
    assert LLMClient.from_settings() is None


def test_from_settings_reads_the_endpoint_and_lists_the_model(scripted_llm, monkeypatch):
    monkeypatch.delenv("REELWORKS_LLM_MODEL")
    monkeypatch.setenv("REELWORKS_LLM_API_KEY", KEY)
    client = LLMClient.from_settings(backoff=0.01)
    assert client.base_url == scripted_llm.url and KEY not in repr(client)
    scripted_llm.answer("Hello.")
    assert client.chat(ASK) == "Hello."
    assert client.model == "scripted-model"  # the first model /v1/models lists
    sent = scripted_llm.requests[-1]
    assert sent["body"]["model"] == "scripted-model" and sent["headers"]["authorization"] == f"Bearer {KEY}"


# ------------------------------------------------------------------ JSON modes and repair


def test_json_schema_mode_answer_is_validated(scripted_llm):
    scripted_llm.answer({"title": "Neon Rain", "scenes": 4})
    client = scripted_llm.client()
    assert client.json(ASK, PLAN, name="plan") == {"title": "Neon Rain", "scenes": 4}
    body = scripted_llm.chat_requests[0]
    assert body["response_format"] == {"type": "json_schema", "json_schema": {"name": "plan", "schema": PLAN}}
    assert body["messages"][0]["role"] == "system" and '"scenes"' in body["messages"][0]["content"]
    assert client.json_mode == "json_schema"


def test_json_schema_rejected_falls_back_to_json_object_and_remembers(scripted_llm):
    scripted_llm.reject_modes = {"json_schema"}  # llama.cpp's server: HTTP 500
    scripted_llm.answer({"title": "A", "scenes": 1}).answer({"title": "B", "scenes": 2})
    client = scripted_llm.client()
    assert client.json(ASK, PLAN)["title"] == "A"
    assert client.json(ASK, PLAN)["title"] == "B"
    kinds = [b["response_format"]["type"] for b in scripted_llm.chat_requests]
    assert kinds == ["json_schema", "json_object", "json_object"]  # rejected once, then remembered
    assert scripted_llm.chat_requests[1]["response_format"]["schema"] == PLAN
    assert client.json_mode == "json_object"


def test_both_json_modes_rejected_fall_back_to_text_with_repair(scripted_llm):
    scripted_llm.reject_modes = {"json_schema", "json_object"}
    scripted_llm.answer('Sure! Here is the plan:\n```json\n{"title": "Dust", "scenes": 3,}\n```\nEnjoy.')
    client = scripted_llm.client()
    assert client.json(ASK, PLAN) == {"title": "Dust", "scenes": 3}
    assert "response_format" not in scripted_llm.chat_requests[-1]
    assert client.json_mode == "text"


@pytest.mark.parametrize("text, expected", [
    ('{"a": 1}', {"a": 1}),
    ('Here you go: {"a": [1, 2,], "b": "x",} hope it helps', {"a": [1, 2], "b": "x"}),
    ("```\n{'a': 'single quotes'}\n```", {"a": "single quotes"}),
    ('{"a": {"b": 2}', {"a": {"b": 2}}),  # cut before the last brace
])
def test_extract_json_repairs_what_models_write(text, expected):
    assert extract_json(text) == expected


def test_extract_json_without_json_is_an_error():
    with pytest.raises(ValueError):
        extract_json("I cannot help with that.")


def test_broken_json_body_is_repaired(scripted_llm):
    scripted_llm.answer('{"title": "Broken", "scenes": 2,')  # a truncated object, finish_reason stop
    assert scripted_llm.client().json(ASK, PLAN) == {"title": "Broken", "scenes": 2}


def test_schema_invalid_answer_is_sent_back_once(scripted_llm):
    scripted_llm.answer({"title": "Too many", "scenes": 40}).answer({"title": "Fixed", "scenes": 5})
    client = scripted_llm.client()
    assert client.json(ASK, PLAN) == {"title": "Fixed", "scenes": 5}
    retry = scripted_llm.chat_requests[1]["messages"]
    assert retry[-2] == {"role": "assistant", "content": json.dumps({"title": "Too many", "scenes": 40})}
    assert "scenes" in retry[-1]["content"] and "9" in retry[-1]["content"]  # the validation error itself
    assert client.transcript[0]["invalid"].startswith("at scenes")


def test_schema_invalid_twice_is_a_clear_error(scripted_llm):
    scripted_llm.answer({"title": ""}).answer("no JSON here at all")
    with pytest.raises(LLMError, match="did not match its JSON schema after one retry") as info:
        scripted_llm.client().json(ASK, PLAN, name="plan")
    assert "\n" not in str(info.value)
    assert len(scripted_llm.chat_requests) == 2  # exactly one retry


def test_invalid_schema_is_the_callers_error(scripted_llm):
    with pytest.raises(ReelworksError, match="invalid JSON schema"):
        scripted_llm.client().json(ASK, {"type": "object", "properties": {"a": {"type": "nonsense"}}})
    assert scripted_llm.chat_requests == []


# ------------------------------------------------------------------ retries and errors


def test_429_then_success_honours_retry_after(scripted_llm):
    scripted_llm.error(429, headers={"retry-after-ms": "20"}).answer("after the limit")
    client = scripted_llm.client(backoff=30)  # the server's Retry-After wins over the backoff
    assert client.chat(ASK) == "after the limit"
    assert [a["status"] for a in client.transcript[0]["attempts"]] == [429, 200]


def test_500_retries_are_bounded(scripted_llm):
    for _ in range(5):
        scripted_llm.error(500)
    client = scripted_llm.client(max_retries=2)
    with pytest.raises(LLMError, match=r"HTTP 500.*gave up after 2 retries"):
        client.chat(ASK)
    assert len(scripted_llm.chat_requests) == 3 and scripted_llm.pending == 2
    assert client.transcript[0]["outcome"] == "error"


def test_400_is_not_retried(scripted_llm):
    scripted_llm.error(400, "max_tokens is too large")
    with pytest.raises(LLMError, match="HTTP 400: max_tokens is too large"):
        scripted_llm.client().chat(ASK)
    assert len(scripted_llm.chat_requests) == 1


def test_cut_off_answer_is_a_clear_error(scripted_llm):
    scripted_llm.answer('{"title": "Half', finish_reason="length")
    with pytest.raises(LLMError, match=r"cut off at max_tokens=16 \(finish_reason=length\)"):
        scripted_llm.client().json(ASK, PLAN, max_tokens=16)
    assert len(scripted_llm.chat_requests) == 1  # a longer answer needs a larger budget, not a retry


def test_timeout_is_retried_then_reported(scripted_llm):
    scripted_llm.delay(1.0).answer("too late").answer("in time")
    client = scripted_llm.client(timeout=0.3)
    assert client.chat(ASK) == "in time"
    attempts = client.transcript[0]["attempts"]
    assert attempts[0]["error"] == "timed out after 0.3 s" and attempts[1]["status"] == 200


def test_unreachable_endpoint_is_one_clear_line(unused_port):
    client = LLMClient(f"http://127.0.0.1:{unused_port}/v1", "m", max_retries=1, backoff=0.01)
    with pytest.raises(LLMError) as info:
        client.chat(ASK)
    message = str(info.value)
    assert "unreachable" in message and "REELWORKS_LLM_BASE_URL" in message and "\n" not in message


# ------------------------------------------------------------------ transcript and secrets


def test_transcript_is_saved_without_the_key(scripted_llm, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    scripted_llm.error(503, f"upstream refused key {KEY}").answer({"title": "T", "scenes": 1})
    client = scripted_llm.client(api_key=KEY)
    client.json(ASK, PLAN)
    client.save_transcript(str(tmp_path / "llm" / "transcript.json"))
    text = (tmp_path / "llm" / "transcript.json").read_text()
    document = json.loads(text)
    exchange = document["exchanges"][0]
    assert exchange["mode"] == "json_schema" and exchange["parsed"] == {"title": "T", "scenes": 1}
    assert exchange["request"]["messages"][-1] == ASK[0]
    assert [a["status"] for a in exchange["attempts"]] == [503, 200] and exchange["seconds"] >= 0
    assert KEY not in text and "<redacted>" in text  # the server echoed the key in its error
    assert KEY not in caplog.text
    assert scripted_llm.requests[-1]["headers"]["authorization"] == f"Bearer {KEY}"  # it was sent


def test_transcript_goes_to_s3(scripted_llm, s3_bucket):
    from reelworks import storage

    scripted_llm.answer("hi")
    client = scripted_llm.client()
    client.chat(ASK)
    client.save_transcript(f"{s3_bucket}/run/llm-transcript.json")
    saved = json.loads(storage.read_text(f"{s3_bucket}/run/llm-transcript.json"))
    assert saved["exchanges"][0]["response"]["content"] == "hi"


# ------------------------------------------------------------------ a real model


TITLE = {"type": "object", "properties": {"title": {"type": "string", "minLength": 1}}, "required": ["title"]}


@pytest.mark.slow
def test_real_model_answers_schema_valid_json(llm_server, tmp_path):
    """SmolLM2-135M-Instruct behind `transformers serve`: a real answer, parsed, repaired as
    needed and validated here (that server ignores response_format)."""
    client = llm_server.client(max_retries=1)
    # One worked example: how small models are steered into a format.
    messages = [{"role": "user", "content": "Plot: five retired thieves rob the bank that ruined their town."},
                {"role": "assistant", "content": '{"title": "Heist at Dawn"}'},
                {"role": "user", "content": "Plot: a lonely robot keeps a lighthouse burning."}]
    answer = client.json(messages, TITLE, name="film", max_tokens=32)
    assert isinstance(answer["title"], str) and answer["title"].strip() and answer["title"] != "Heist at Dawn"
    client.save_transcript(str(tmp_path / "transcript.json"))
    exchange = json.loads((tmp_path / "transcript.json").read_text())["exchanges"][-1]
    assert exchange["outcome"] == "ok" and exchange["parsed"] == answer
    assert exchange["response"]["finish_reason"] == "stop"
