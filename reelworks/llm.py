"""A client for any OpenAI-compatible chat endpoint (OpenAI, vLLM, llama.cpp's server, Ollama,
`transformers serve`) through the `openai` package.

Servers differ in what they honour, so the client trusts none of them:

- JSON answers are parsed and validated against the caller's JSON schema here, whatever the
  server claims. Structured output is asked for with `response_format={"type": "json_schema"}`;
  a server that rejects it is asked with `{"type": "json_object", "schema": ...}` (llama.cpp's
  server constrains its grammar with that schema), and one that rejects that too gets plain
  text, from which the JSON object is cut out of prose or code fences and repaired
  (`json_repair`: trailing commas, single quotes, ...). The mode the server accepted is kept
  for the next calls. A schema-invalid answer is sent back once with the validation error.
- Messages go out as strict servers (vLLM or llama.cpp with Mistral- or Gemma-style chat
  templates) require: at most one system message, first, then user and assistant turns
  alternating from a user turn. Several system texts are merged into one, and consecutive
  turns of one role into one turn (`alternating`).
- A refused response_format is recognised by what the error says about it (`_rejects_mode`),
  never by the status alone: a 400 about anything else (a chat template, a context length) is
  that error, reported as it is.
- 429, 5xx, timeouts and refused connections are retried a bounded number of times with
  exponential backoff (a `Retry-After` header, when the server sends one, sets the wait).
- An answer cut off at `max_tokens` (`finish_reason == "length"`) is an `LLMError`, never
  half a JSON object.
- Every exchange (the messages sent, the answer, the mode, each attempt and its timing) is
  kept in `transcript` and saved with `save_transcript(uri)`; the API key, and any
  `user:password@` or `?api-key=` in the base URL, is never in it, in an error or in a log.

Steps that can do without an LLM call `LLMClient.from_settings()`, which returns None when no
endpoint is configured (REELWORKS_LLM_BASE_URL), and fall back to a deterministic template.
"""
from __future__ import annotations

import json
import logging
import random
import re
import time
from datetime import datetime, timezone

from reelworks import redaction, settings, storage
from reelworks.errors import ReelworksError

log = logging.getLogger(__name__)

# Tried in this order; the first the server accepts is kept for the client's later calls.
JSON_MODES = ("json_schema", "json_object", "text")
# Loggers that may print request details at DEBUG (headers are redacted anyway).
_LEAKY_LOGGERS = ("openai", "httpx", "httpx2", "httpcore")
_MAX_RETRY_AFTER = 60.0
_PLACEHOLDER_KEY = "no-key"  # the openai client insists on a key; local servers ignore it
# What a server's error says when it does not take a response_format (see _rejects_mode).
_FORMAT_WORDS = ("response_format", "json_schema", "json_object", "structured output", "guided_json")
_UNSUPPORTED_WORDS = ("not supported", "unsupported", "not implemented")
_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)


class LLMError(ReelworksError):
    """The LLM endpoint could not give a usable answer (one clear line). `unreachable`: it
    never answered at all (refused connections or timeouts through every retry)."""

    unreachable = False


class _Unsupported(Exception):
    """The server refused the response_format of this mode."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def extract_json(text: str):
    """The JSON value in a model's answer: plain JSON, or cut out of prose or a code fence and
    repaired (trailing commas, single quotes, unquoted keys, a missing closing brace).
    Raises ValueError when there is none."""
    text = text.strip()
    try:
        return json.loads(text)
    except ValueError:
        pass
    fenced = _FENCE.search(text)
    candidate = fenced.group(1).strip() if fenced else text
    start = min((i for i in (candidate.find("{"), candidate.find("[")) if i >= 0), default=-1)
    if start < 0:
        raise ValueError("no JSON object in the answer")
    candidate = candidate[start:]
    import json_repair

    value = json_repair.loads(candidate)
    if value in ("", None):
        raise ValueError("no JSON object in the answer")
    return value


def alternating(messages: list[dict]) -> list[dict]:
    """`messages` as strict chat templates accept them: [system?, user, assistant, user, ...].

    Every system text is merged, in order, into one leading system message; consecutive turns
    of one role become one turn (texts joined by a blank line); a conversation that would open
    with the assistant gets an empty user turn first, as those templates require."""
    system = [str(m.get("content") or "") for m in messages if m.get("role") == "system"]
    turns: list[dict] = []
    for message in messages:
        if message.get("role") == "system":
            continue
        if turns and turns[-1]["role"] == message["role"]:
            turns[-1] = {**turns[-1], "content": f"{turns[-1]['content']}\n\n{message.get('content') or ''}"}
        else:
            turns.append(dict(message))
    if turns and turns[0]["role"] != "user":
        turns.insert(0, {"role": "user", "content": ""})
    head = [{"role": "system", "content": "\n\n".join(text for text in system if text.strip())}] if system else []
    return head + turns


def _schema_instruction(schema: dict) -> str:
    return ("Answer with one JSON object only, no prose and no code fence, that matches this JSON schema:\n"
            + json.dumps(schema, ensure_ascii=False))


class LLMClient:
    """One OpenAI-compatible chat endpoint; see the module docstring."""

    def __init__(self, base_url: str, model: str | None, api_key: str | None = None, *, timeout: float = 120,
                 max_retries: int = 3, temperature: float = 0.7, seed: int | None = None, backoff: float = 1.0):
        if not base_url:
            raise ReelworksError("an LLM endpoint needs a base URL (REELWORKS_LLM_BASE_URL), e.g. "
                                 "http://llm:8080/v1")
        self.base_url = base_url.rstrip("/")
        # The endpoint as logs, errors and the transcript show it: no user:password@, no ?api-key=.
        self.endpoint = redaction.redact_urls(self.base_url)
        self.model = model
        self.timeout = timeout
        self.max_retries = max_retries
        self.temperature = temperature
        self.seed = seed
        self.backoff = backoff
        self._key = api_key or ""
        self.json_mode = JSON_MODES[0]
        self.transcript: list[dict] = []
        self._client = None

    def __repr__(self) -> str:  # never the key
        return f"LLMClient({self.endpoint!r}, model={self.model!r})"

    @classmethod
    def from_settings(cls, **kwargs) -> "LLMClient | None":
        """The endpoint from REELWORKS_LLM_BASE_URL / _MODEL / _API_KEY; None when none is set."""
        base_url = settings.llm_base_url()
        if base_url is None:
            return None
        return cls(base_url, settings.llm_model(), settings.llm_api_key(), **kwargs)

    # ------------------------------------------------------------------ plumbing

    @property
    def client(self):
        if self._client is None:
            import openai

            # Retries are ours (bounded, logged, in the transcript), so the library makes none.
            self._client = openai.OpenAI(base_url=self.base_url, api_key=self._key or _PLACEHOLDER_KEY,
                                         timeout=self.timeout, max_retries=0)
        return self._client

    def _redact(self, text: str) -> str:
        return redaction.redact(text, [self._key])

    def _guard(self):
        return redaction.guarded_logging([self._key], _LEAKY_LOGGERS)

    def _model(self) -> str:
        """The configured model, or the first one the endpoint lists."""
        if self.model is None:
            with self._guard():
                models = self._retrying(lambda: self.client.models.list(), attempts=[])
            ids = [m.id for m in models.data]
            if not ids:
                raise LLMError(f"LLM endpoint {self.endpoint} lists no model; set REELWORKS_LLM_MODEL")
            self.model = ids[0]
            log.info("LLM endpoint %s: using model %s (the first it lists)", self.endpoint, self.model)
        return self.model

    def _retry_delay(self, failures: int, exc) -> float:
        response = getattr(exc, "response", None)
        headers = response.headers if response is not None else {}
        for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
            value = headers.get(name)
            try:
                if value is not None:
                    return min(float(value) * scale, _MAX_RETRY_AFTER)
            except ValueError:
                pass
        return self.backoff * 2 ** (failures - 1) * random.uniform(0.75, 1.25)

    def _describe(self, exc) -> str:
        import openai

        if isinstance(exc, openai.APITimeoutError):
            return f"timed out after {self.timeout:g} s"
        if isinstance(exc, openai.APIConnectionError):
            cause = exc.__cause__ or exc.__context__
            return f"unreachable ({type(cause).__name__ if cause else 'connection error'})"
        if isinstance(exc, openai.APIStatusError):
            detail = exc.message if isinstance(exc.message, str) else str(exc)
            detail = re.sub(r"^Error code: \d+ - ", "", detail)
            return f"HTTP {exc.status_code}: {' '.join(detail.split())[:200]}"
        return f"{type(exc).__name__}: {exc}"

    def _retrying(self, call, attempts: list[dict], mode: str | None = None):
        """`call()` with bounded backoff on 429, 5xx, timeouts and connection errors."""
        import openai

        failures = 0
        while True:
            started = time.monotonic()
            try:
                result = call()
                attempts.append({"at": _now(), "seconds": round(time.monotonic() - started, 3), "status": 200})
                return result
            except openai.APIError as exc:
                seconds = round(time.monotonic() - started, 3)
                status = getattr(exc, "status_code", None)
                what = self._redact(self._describe(exc))
                attempts.append({"at": _now(), "seconds": seconds, "status": status, "error": what})
                if mode is not None and self._rejects_mode(exc, mode):
                    raise _Unsupported(what) from None
                retriable = isinstance(exc, (openai.APIConnectionError, openai.RateLimitError,
                                             openai.InternalServerError)) or (status is not None and status >= 500)
                if not retriable:
                    hint = (" (check REELWORKS_LLM_API_KEY)" if status in (401, 403) else
                            " (check REELWORKS_LLM_MODEL)" if status == 404 else "")
                    raise LLMError(f"LLM endpoint {self.endpoint}: {what}{hint}") from None
                failures += 1
                if failures > self.max_retries:
                    hint = "; check REELWORKS_LLM_BASE_URL" if isinstance(exc, openai.APIConnectionError) \
                        and not isinstance(exc, openai.APITimeoutError) else ""
                    error = LLMError(f"LLM endpoint {self.endpoint}: {what}; gave up after "
                                     f"{self.max_retries} retries{hint}")
                    error.unreachable = isinstance(exc, openai.APIConnectionError)  # timeouts included
                    raise error from None
                delay = self._retry_delay(failures, exc)
                log.warning("LLM endpoint %s: %s; retry %d of %d in %.1f s", self.endpoint, what, failures,
                            self.max_retries, delay)
                time.sleep(delay)

    @staticmethod
    def _rejects_mode(exc, mode: str) -> bool:
        """Did the server refuse this response_format (rather than fail for another reason)?

        Servers answer 400, 404, 422 or 500 ("response_format type must be one of ..." from
        llama.cpp's server, "'response_format' of type 'json_schema' is not supported with this
        model" from OpenAI), so the status says little: the error text must be about the
        response format. Any other refusal (a strict chat template's "roles must alternate", a
        prompt over the context) is that error, not a reason to drop structured output."""
        if mode == "text" or getattr(exc, "status_code", None) is None:
            return False
        text = f"{getattr(exc, 'message', '')} {getattr(exc, 'body', '')}".lower()
        return any(word in text for word in _FORMAT_WORDS) or (
            any(word in text for word in _UNSUPPORTED_WORDS) and ("schema" in text or "format" in text))

    @staticmethod
    def _response_format(mode: str, schema: dict | None, name: str) -> dict | None:
        if schema is None or mode == "text":
            return None
        if mode == "json_schema":
            return {"type": "json_schema", "json_schema": {"name": name, "schema": schema}}
        return {"type": "json_object", "schema": schema}

    def _exchange(self, messages: list[dict], *, max_tokens: int | None, mode: str,
                  schema: dict | None = None, name: str = "answer") -> tuple[str, dict]:
        """One request (with its retries), recorded in the transcript: (content, transcript entry)."""
        response_format = self._response_format(mode, schema, name)
        request = {"model": self._model(), "messages": alternating(messages), "temperature": self.temperature}
        if max_tokens is not None:
            request["max_tokens"] = max_tokens
        if self.seed is not None:
            request["seed"] = self.seed
        if response_format is not None:
            request["response_format"] = response_format
        entry = {"at": _now(), "endpoint": self.endpoint, "mode": mode if schema is not None else "chat",
                 "request": json.loads(json.dumps(request, default=str)), "attempts": []}
        self.transcript.append(entry)
        started = time.monotonic()
        try:
            with self._guard():
                completion = self._retrying(lambda: self.client.chat.completions.create(**request),
                                            entry["attempts"], mode if response_format else None)
        except _Unsupported as exc:
            entry.update(outcome="mode_rejected", error=str(exc), seconds=round(time.monotonic() - started, 3))
            raise
        except LLMError as exc:
            entry.update(outcome="error", error=str(exc), seconds=round(time.monotonic() - started, 3))
            raise
        entry["seconds"] = round(time.monotonic() - started, 3)
        if not completion.choices:
            entry.update(outcome="error", error="no choices in the answer")
            raise LLMError(f"LLM endpoint {self.endpoint} answered with no choices")
        choice = completion.choices[0]
        content = choice.message.content or ""
        usage = completion.usage.model_dump() if getattr(completion, "usage", None) else None
        entry["response"] = {"content": content, "finish_reason": choice.finish_reason, "usage": usage,
                             "model": getattr(completion, "model", None)}
        if choice.finish_reason == "length":
            entry["outcome"] = "cut_off"
            limit = f"max_tokens={max_tokens}" if max_tokens is not None else "the server's token limit"
            raise LLMError(f"the LLM's answer was cut off at {limit} (finish_reason=length); raise max_tokens "
                           "or shorten the prompt")
        entry["outcome"] = "ok"
        return content, entry

    # ------------------------------------------------------------------ the API

    def chat(self, messages: list[dict], *, max_tokens: int | None = None) -> str:
        """The assistant's text answer to `messages` (OpenAI chat format)."""
        content, _ = self._exchange(list(messages), max_tokens=max_tokens, mode="text")
        return content

    def json(self, messages: list[dict], schema: dict, *, name: str = "answer",
             max_tokens: int | None = None) -> dict:
        """A JSON object answering `messages`, valid against the JSON `schema` (checked here)."""
        import jsonschema

        validator_cls = jsonschema.validators.validator_for(schema)
        try:
            validator_cls.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise ReelworksError(f"invalid JSON schema for {name!r}: {exc.message}") from None
        validator = validator_cls(schema)
        # After the caller's own system text: `alternating` merges both into the one system message.
        messages = [*messages, {"role": "system", "content": _schema_instruction(schema)}]
        for attempt in range(2):  # the answer, then one correction with the validation error
            content, entry = self._json_exchange(messages, schema, name, max_tokens)
            problem = None
            try:
                value = extract_json(content)
            except ValueError as exc:
                problem = f"the answer is not JSON ({exc})"
            else:
                if isinstance(value, dict):
                    error = jsonschema.exceptions.best_match(validator.iter_errors(value))
                    if error is None:
                        entry["parsed"] = value
                        return value
                    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
                    problem = f"at {where}: {error.message}"
                else:
                    problem = f"the answer is a JSON {type(value).__name__}, not an object"
            entry["invalid"] = problem
            log.warning("LLM answer for %r did not match the schema (%s)%s", name, problem,
                        "; asking once more" if attempt == 0 else "")
            messages = [*messages, {"role": "assistant", "content": content},
                        {"role": "user", "content": f"That answer does not match the schema: {problem}. "
                                                    "Answer again with only the corrected JSON object."}]
        raise LLMError(f"the LLM's answer for {name!r} did not match its JSON schema after one retry: "
                       f"{problem[:300]}")

    def _json_exchange(self, messages: list[dict], schema: dict, name: str,
                       max_tokens: int | None) -> tuple[str, dict]:
        """One exchange in the first mode the server accepts (remembered for later calls)."""
        while True:
            try:
                return self._exchange(messages, max_tokens=max_tokens, mode=self.json_mode, schema=schema,
                                      name=name)
            except _Unsupported as exc:
                following = JSON_MODES[JSON_MODES.index(self.json_mode) + 1]
                log.info("LLM endpoint %s refused response_format %s (%s); using %s", self.endpoint,
                         self.json_mode, exc, following)
                self.json_mode = following

    def save_transcript(self, uri: str) -> None:
        """Every exchange so far as one JSON document at `uri` (an artifact of the step)."""
        document = {"endpoint": self.endpoint, "model": self.model, "json_mode": self.json_mode,
                    "exchanges": self.transcript}
        text = self._redact(json.dumps(document, ensure_ascii=False, indent=1, default=str)) + "\n"
        storage.write_bytes(uri, text.encode())
