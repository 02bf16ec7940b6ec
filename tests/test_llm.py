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


def test_a_400_about_something_else_is_not_taken_as_unsupported_json_schema(scripted_llm):
    scripted_llm.error(400, "This model's maximum context length is 2048 tokens; your prompt has 3100")
    client = scripted_llm.client()
    with pytest.raises(LLMError, match="maximum context length") as info:
        client.json(ASK, PLAN)
    assert "\n" not in str(info.value)
    assert len(scripted_llm.chat_requests) == 1 and client.json_mode == "json_schema"  # no mode fallback


@pytest.mark.parametrize("status, message", [
    (400, "Invalid parameter: 'response_format' of type 'json_schema' is not supported with this model."),
    (422, "structured output is not supported by this backend"),
    (400, "schema not supported"),
])
def test_a_refusal_that_names_the_response_format_falls_back(scripted_llm, status, message):
    scripted_llm.error(status, message).answer({"title": "A", "scenes": 1})
    client = scripted_llm.client()
    assert client.json(ASK, PLAN)["title"] == "A"
    assert [b["response_format"]["type"] for b in scripted_llm.chat_requests] == ["json_schema", "json_object"]


def test_messages_alternate_after_one_system_message(scripted_llm):
    """Strict templates refuse [system, system, user] and user after user: the client merges them."""
    scripted_llm.answer({"title": "A", "scenes": 1}).answer("fine")
    client = scripted_llm.client()
    client.json([{"role": "system", "content": "You plan videos."}, {"role": "system", "content": "Be brief."},
                 {"role": "user", "content": "Lyrics: rain."}, {"role": "user", "content": "Plan it."}], PLAN)
    client.chat([{"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Hi."}])
    first, second = (b["messages"] for b in scripted_llm.chat_requests)
    assert [m["role"] for m in first] == ["system", "user"]
    assert first[0]["content"].startswith("You plan videos.\n\nBe brief.\n\n") and '"scenes"' in first[0]["content"]
    assert first[1]["content"] == "Lyrics: rain.\n\nPlan it."
    assert [m["role"] for m in second] == ["user", "assistant", "user"]
    assert scripted_llm.refused == 0


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


def test_url_credentials_stay_out_of_transcript_logs_and_errors(scripted_llm, unused_port, tmp_path, caplog,
                                                                capfd, monkeypatch):
    """A base URL with user:password@ (sent as Basic auth) or ?api-key=: the endpoint is shown
    without them in the transcript, the logs, the errors and repr()."""
    from reelworks.progress import setup_logging

    password, token = "Pw-5Kc1SecretUrlPassword", "qk-8Jd4SecretQueryKey"
    monkeypatch.setenv("REELWORKS_LLM_API_KEY", KEY)
    setup_logging("DEBUG")
    caplog.set_level(logging.DEBUG)
    scripted_llm.error(503, "busy").answer("Hello.")
    client = LLMClient(scripted_llm.url.replace("http://", f"http://reel:{password}@"), None, KEY, backoff=0.01)
    assert client.chat(ASK) == "Hello."
    assert scripted_llm.requests[-1]["headers"]["authorization"].startswith("Basic ")  # the password was used
    client.save_transcript(str(tmp_path / "transcript.json"))
    transcript = (tmp_path / "transcript.json").read_text()
    assert json.loads(transcript)["endpoint"] == scripted_llm.url.replace("http://", "http://<redacted>@")

    unreachable = LLMClient(f"http://reel:{password}@127.0.0.1:{unused_port}/v1?api-key={token}", "m", KEY,
                            max_retries=1, backoff=0.01)
    with pytest.raises(LLMError) as info:
        unreachable.chat(ASK)
    unreachable.save_transcript(str(tmp_path / "unreachable.json"))
    captured = capfd.readouterr()
    everything = (transcript + (tmp_path / "unreachable.json").read_text() + caplog.text + captured.out
                  + captured.err + str(info.value) + repr(client) + repr(unreachable))
    assert "retry 1 of 1" in caplog.text and "api-key=<redacted>" in str(info.value)
    for secret in (password, token, KEY):
        assert secret not in everything, secret


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


def test_real_model_answers_schema_valid_json(llamacpp_server, tmp_path):
    """SmolLM2-135M-Instruct behind llama.cpp's server with a strict chat template: a caller's
    own system message beside the client's schema instruction goes out as one system message,
    the server takes json_schema (grammar-enforced) and nothing is refused."""
    client = llamacpp_server.client(max_retries=1)
    messages = [{"role": "system", "content": "You name films."},
                {"role": "user", "content": "Plot: a lonely robot keeps a lighthouse burning. Name the film."}]
    answer = client.json(messages, TITLE, name="film", max_tokens=48)
    assert isinstance(answer["title"], str) and answer["title"].strip()
    client.save_transcript(str(tmp_path / "transcript.json"))
    saved = json.loads((tmp_path / "transcript.json").read_text())
    exchange = saved["exchanges"][-1]
    assert len(saved["exchanges"]) == 1 and saved["json_mode"] == "json_schema"
    assert exchange["outcome"] == "ok" and exchange["parsed"] == answer
    assert exchange["response"]["finish_reason"] == "stop"
    sent = exchange["request"]["messages"]
    assert [m["role"] for m in sent] == ["system", "user"]
    assert sent[0]["content"].startswith("You name films.") and '"title"' in sent[0]["content"]


def test_strict_server_refuses_two_system_messages(llamacpp_server):
    """The fixture really is strict: [system, system, user] is a 400, as vLLM and llama.cpp with
    Mistral- or Gemma-style templates answer (raw HTTP: the client would merge them)."""
    import urllib.error
    import urllib.request

    body = {"model": llamacpp_server.model, "max_tokens": 4,
            "messages": [{"role": "system", "content": "a"}, {"role": "system", "content": "b"},
                         {"role": "user", "content": "hi"}]}
    request = urllib.request.Request(f"{llamacpp_server.url}/chat/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=60)
    assert info.value.code == 400 and "roles must alternate" in info.value.read().decode()


def test_poster_prompt_from_the_strict_server(llamacpp_server):
    """The posters' prompt call (its own system message plus the schema instruction) gets a valid
    answer from the strict server, in json_schema mode, nothing refused."""
    from reelworks.posters.from_plots import llm_prompt
    from reelworks.tweeter.queue import QueueItem

    client = llamacpp_server.client(max_retries=0, timeout=600)
    item = QueueItem(title="The Last Lighthouse", plot="A keeper guards the last lighthouse on a drowned coast.",
                     genres=["Drama"])
    prompt, negative = llm_prompt(client, item)
    assert prompt.strip() and isinstance(negative, str)
    assert [a["status"] for e in client.transcript for a in e["attempts"]] == [200]
    assert client.json_mode == "json_schema"
