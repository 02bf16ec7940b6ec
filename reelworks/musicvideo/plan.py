"""Step 1: lyrics -> a plan (plot, sections, one Stable Diffusion scene per lyric line).

With an LLM (`reelworks.llm`, any OpenAI-compatible endpoint) the conversation follows the
original project's manual one: a role and the lyrics, pitches, feedback rounds (only the
user's own notes, from `--feedback`: none without them), then the plan as JSON.
Every message that asks for something repeats the numbered lyrics, so a model that forgets
earlier context still has them. The LLM writes the words (plot, section names, prompts); the
code decides the rest: which lines form each section (an even split in song order), and each
scene's seed (`BASE_SEED + line`, the same on every run). Prompts are cut to CLIP's 77 tokens,
counted with its tokenizer. The answer's schema pins each scene's line and lyric, so a server
that enforces schemas cannot skip, repeat or invent one; the plan is still checked (many servers
do not enforce): every lyric line covered exactly once, no invented lines. A failed check goes
back to the LLM once with the problems listed; a second failure stops with one clear line.
A long song (`LONG_SONG_S` and more, or over `MAX_SCENES_PER_ANSWER` lines) is planned
section by section: an outline (title, plot, sections) first, then one answer per section.

Without an LLM (none configured, or an endpoint that never answers) the plan comes from a
deterministic template, said in one log line and in the report. `--plan-from` takes a plan the
user edited, `prompts.csv` or `plan.json` (an earlier run's output), skips the LLM and checks
it against the lyrics.

`prompts.csv` format (UTF-8, header row, one row per lyric line, in song order):

    line,time_s,section,lyric,prompt,negative_prompt,seed

`line` is the 0-based lyric line, `time_s` its LRC time (empty for plain lyrics), `section`
the section's name. Reading is lenient: column names are case-insensitive, `lyrics`/`text`
stand for `lyric`, `negative`/`negative prompt` for `negative_prompt`; only `lyric` and
`prompt` are required (a missing seed becomes 1000 + line, a missing section "1").
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
from dataclasses import asdict, dataclass, field
from typing import Callable

from reelworks import storage
from reelworks.errors import ReelworksError
from reelworks.musicvideo.lyrics import LyricLine, normalise
from reelworks.musicvideo import lyrics as lyrics_io

log = logging.getLogger(__name__)

PLAN_VERSION = 1
MAX_TOKENS = 77
DEFAULT_SECTIONS = 5
DEFAULT_NEGATIVE = "blurry, low quality, text, watermark, deformed hands, jpeg artifacts"
DEFAULT_STYLE = "cinematic still, volumetric light, 35mm film, highly detailed"
BASE_SEED = 1000
DEFAULT_ROUNDS = 3           # at most this many feedback rounds, one per note of --feedback
LONG_SONG_S = 300.0          # songs this long (by their LRC times) are planned section by section
MAX_SCENES_PER_ANSWER = 48   # and so is any song with more lines than one answer should hold
PROMPT_CHARS = 600           # a grammar bound on each prompt; CLIP's 77 tokens are enforced in code
ROLE = ("You are a music video director who writes prompts for Stable Diffusion. You plan videos as a "
        "sequence of concrete, filmable scenes, one per lyric line, and you never change the lyrics.")
CSV_COLUMNS = ("line", "time_s", "section", "lyric", "prompt", "negative_prompt", "seed")
_ALIASES = {"lyrics": "lyric", "text": "lyric", "line_text": "lyric", "negative": "negative_prompt",
            "negative prompt": "negative_prompt", "negativeprompt": "negative_prompt", "neg_prompt": "negative_prompt",
            "index": "line", "time": "time_s", "start": "time_s", "image_prompt": "prompt", "sd_prompt": "prompt"}
SECTION_MOODS = ("dawn light, quiet", "rising tension, saturated colour", "night, storm, high contrast",
                 "aftermath, mist, muted colour", "sunrise, warm gold, wide shot", "dreamlike, soft focus")


@dataclass
class Scene:
    line: int
    lyric: str
    section: int
    prompt: str
    negative_prompt: str
    seed: int
    time_s: float | None = None


@dataclass
class Plan:
    title: str
    plot: str
    sections: list[dict]          # {"name", "description"}
    scenes: list[Scene]
    source: str                   # "llm", "template" or "prompts.csv"
    lyrics_sha256: str
    rounds: list[dict] = field(default_factory=list)   # every pitch/feedback round, for the report
    version: int = PLAN_VERSION

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Plan":
        try:
            scenes = [Scene(**s) for s in data["scenes"]]
            return cls(title=data["title"], plot=data["plot"], sections=list(data["sections"]), scenes=scenes,
                       source=data["source"], lyrics_sha256=data["lyrics_sha256"], rounds=data.get("rounds", []),
                       version=data.get("version", PLAN_VERSION))
        except (KeyError, TypeError) as exc:
            raise ReelworksError(f"not a music video plan: {type(exc).__name__} {exc}") from None


def lyrics_fingerprint(lines: list[LyricLine]) -> str:
    return hashlib.sha256("\n".join(normalise(line.text) for line in lines).encode()).hexdigest()


def load_plan(uri: str) -> Plan:
    """A `plan.json` (or the folder holding one)."""
    if not uri.endswith(".json"):
        uri = storage.join(uri, "plan.json")
    return Plan.from_dict(storage.read_json(uri))


# --------------------------------------------------------------------------- checks


def token_counter() -> Callable[[str], int]:
    """CLIP's tokenizer (the real 49,408-token vocabulary) as a token count with BOS/EOS."""
    from reelworks import diffusion

    tokenizer = diffusion.clip_tokenizer()
    return lambda text: len(tokenizer(text)["input_ids"])


def check(plan: Plan, lines: list[LyricLine], count_tokens: Callable[[str], int]) -> list[str]:
    """Every problem with `plan` against the lyrics, one short line each ([] = good)."""
    problems: list[str] = []
    seen: dict[int, int] = {}
    known = {normalise(line.text) for line in lines}
    by_index = {line.index: line for line in lines}  # `lines` may be one section's
    for number, scene in enumerate(plan.scenes):
        where = f"scene {number + 1}"
        if not isinstance(scene.line, int) or scene.line not in by_index:
            if normalise(str(scene.lyric)) in known:
                problems.append(f"{where}: line number {scene.line!r} is not a lyric line number "
                                f"({lines[0].index}-{lines[-1].index})")
            else:
                problems.append(f"{where}: invented line {scene.lyric!r} is not in the lyrics")
            continue
        if normalise(str(scene.lyric)) != normalise(by_index[scene.line].text):
            if normalise(str(scene.lyric)) in known:
                problems.append(f"{where}: lyric {scene.lyric!r} is not line {scene.line} "
                                f"({by_index[scene.line].text!r})")
            else:
                problems.append(f"{where}: invented line {scene.lyric!r}; line {scene.line} is "
                                f"{by_index[scene.line].text!r}")
        seen[scene.line] = seen.get(scene.line, 0) + 1
        if not str(scene.prompt).strip():
            problems.append(f"{where}: empty prompt")
        else:
            tokens = count_tokens(scene.prompt)
            if tokens > MAX_TOKENS:
                problems.append(f"{where}: prompt has {tokens} CLIP tokens, over the {MAX_TOKENS}-token limit")
        if count_tokens(str(scene.negative_prompt)) > MAX_TOKENS:
            problems.append(f"{where}: negative prompt over the {MAX_TOKENS}-token limit")
        if not isinstance(scene.seed, int) or not 0 <= scene.seed < 2**32:
            problems.append(f"{where}: seed {scene.seed!r} is not an integer in [0, 2^32)")
        if not isinstance(scene.section, int) or not 0 <= scene.section < len(plan.sections):
            problems.append(f"{where}: section {scene.section!r} is not one of the {len(plan.sections)} sections")
    for line in lines:
        count = seen.get(line.index, 0)
        if count == 0:
            problems.append(f"line {line.index} ({line.text!r}) has no scene")
        elif count > 1:
            problems.append(f"line {line.index} ({line.text!r}) has {count} scenes")
    order = [s.line for s in plan.scenes]
    if not problems and order != sorted(order):
        problems.append("scenes are not in song order")
    sections = [s.section for s in plan.scenes if isinstance(s.section, int)]
    if not problems and sections != sorted(sections):
        problems.append("sections are not in song order (each section is one stretch of the song)")
    if not plan.sections:
        problems.append("the plan has no sections")
    return problems


def _finish(plan: Plan, lines: list[LyricLine]) -> Plan:
    """Scenes in song order carrying the LRC times."""
    plan.scenes.sort(key=lambda s: s.line)
    by_index = {line.index: line for line in lines}
    for scene in plan.scenes:
        scene.time_s = by_index[scene.line].time_s
        scene.lyric = by_index[scene.line].text
    return plan


def scene_seed(line: int) -> int:
    """A scene's seed: chosen here, never by the LLM, so a plan's frames are the same on every run."""
    return BASE_SEED + line


def is_long(lines: list[LyricLine]) -> bool:
    """Planned section by section: `LONG_SONG_S` or more by the LRC times, or too many lines."""
    times = [line.time_s for line in lines if line.time_s is not None]
    return len(lines) > MAX_SCENES_PER_ANSWER or (bool(times) and max(times) >= LONG_SONG_S)


# --------------------------------------------------------------------------- template


def section_of(line: int, n_lines: int, n_sections: int) -> int:
    return min(n_sections - 1, line * n_sections // n_lines)


def template_plan(lines: list[LyricLine], sections: int = DEFAULT_SECTIONS, brief: str = "",
                  fit: Callable[[str], str] = lambda text: text) -> Plan:
    """A deterministic plan from the lyrics alone: the lyric line as the subject, the section's
    mood and one style for the whole video."""
    n_sections = max(1, min(sections, len(lines)))
    style = brief.strip() or DEFAULT_STYLE
    section_list = []
    for s in range(n_sections):
        members = [line for line in lines if section_of(line.index, len(lines), n_sections) == s]
        section_list.append({"name": f"Part {s + 1}", "description": f"{SECTION_MOODS[s % len(SECTION_MOODS)]}; "
                             f"lines {members[0].index + 1}-{members[-1].index + 1}"})
    scenes = []
    for line in lines:
        s = section_of(line.index, len(lines), n_sections)
        prompt = fit(f"{line.text.rstrip('.,;:!?')}, {SECTION_MOODS[s % len(SECTION_MOODS)]}, {style}")
        scenes.append(Scene(line.index, line.text, s, prompt, DEFAULT_NEGATIVE, scene_seed(line.index), line.time_s))
    plot = (f"A visual journey through the song in {n_sections} parts, each line a scene: "
            + "; ".join(f"{sec['name']}: {sec['description']}" for sec in section_list) + ".")
    return Plan(title=lines[0].text[:60], plot=plot, sections=section_list, scenes=scenes, source="template",
                lyrics_sha256=lyrics_fingerprint(lines))


# --------------------------------------------------------------------------- prompts.csv


def to_csv(plan: Plan) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for scene in plan.scenes:
        name = plan.sections[scene.section]["name"] if 0 <= scene.section < len(plan.sections) else str(scene.section)
        writer.writerow([scene.line, "" if scene.time_s is None else scene.time_s, name, scene.lyric, scene.prompt,
                         scene.negative_prompt, scene.seed])
    return buffer.getvalue()


def from_csv(text: str, lines: list[LyricLine], source: str = "prompts.csv") -> Plan:
    """A plan from a prompts.csv; rows are matched to lyric lines by `line`, else in order."""
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        raise ReelworksError(f"{source} is empty")
    header = [_ALIASES.get(h.strip().lower(), h.strip().lower()) for h in rows[0]]
    if "prompt" not in header or "lyric" not in header:
        raise ReelworksError(f"{source} needs 'lyric' and 'prompt' columns; found {', '.join(rows[0])}")
    section_names: list[str] = []
    scenes = []
    for number, row in enumerate(rows[1:]):
        cell = dict(zip(header, (c.strip() for c in row)))
        try:
            line = int(cell["line"]) if cell.get("line") else number
            seed = int(cell["seed"]) if cell.get("seed") else scene_seed(line)
        except ValueError:
            raise ReelworksError(f"{source} row {number + 2}: line and seed must be integers") from None
        name = cell.get("section") or "1"
        if name not in section_names:
            section_names.append(name)
        scenes.append(Scene(line, cell.get("lyric", ""), section_names.index(name), cell.get("prompt", ""),
                            cell.get("negative_prompt") or DEFAULT_NEGATIVE, seed))
    if not scenes:
        raise ReelworksError(f"{source} has a header but no rows")
    sections = [{"name": name, "description": ""} for name in section_names]
    return Plan(title=lines[0].text[:60], plot=f"(from {source})", sections=sections, scenes=scenes,
                source="prompts.csv", lyrics_sha256=lyrics_fingerprint(lines))


# --------------------------------------------------------------------------- LLM


PITCHES_SCHEMA = {
    "type": "object",
    "properties": {"pitches": {"type": "array", "minItems": 1, "items": {
        "type": "object", "properties": {"title": {"type": "string"}, "idea": {"type": "string"}},
        "required": ["title", "idea"]}}},
    "required": ["pitches"],
}


def scenes_schema(lines: list[LyricLine]) -> dict:
    """One scene per line, in order: each item pins its line number and lyric (`const`), so a
    server that enforces schemas cannot skip, repeat or invent a line; the model writes only
    the prompts. (The checks still run: many servers do not enforce.)"""
    return {"type": "array", "minItems": len(lines), "maxItems": len(lines), "prefixItems": [
        {"type": "object",
         "properties": {"line": {"const": line.index}, "lyric": {"const": line.text},
                        "prompt": {"type": "string", "minLength": 1, "maxLength": PROMPT_CHARS},
                        "negative_prompt": {"type": "string", "maxLength": PROMPT_CHARS}},
         "required": ["line", "lyric", "prompt", "negative_prompt"]} for line in lines]}


def _sections_schema(n_sections: int) -> dict:
    return {"type": "array", "minItems": n_sections, "maxItems": n_sections, "items": {
        "type": "object", "properties": {"name": {"type": "string"}, "description": {"type": "string"}},
        "required": ["name", "description"]}}


def plan_schema(lines: list[LyricLine], n_sections: int) -> dict:
    """The whole plan in one answer (songs that are not long)."""
    return {"type": "object",
            "properties": {"title": {"type": "string"}, "plot": {"type": "string"},
                           "sections": _sections_schema(n_sections), "scenes": scenes_schema(lines)},
            "required": ["title", "plot", "sections", "scenes"]}


def outline_schema(n_sections: int) -> dict:
    """A long song's first answer: the plot and its sections, no scenes yet."""
    return {"type": "object",
            "properties": {"title": {"type": "string"}, "plot": {"type": "string"},
                           "sections": _sections_schema(n_sections)},
            "required": ["title", "plot", "sections"]}


def _numbered(lines: list[LyricLine]) -> str:
    return "\n".join(f"{line.index}: {line.text}" for line in lines)


def _sections_text(lines: list[LyricLine], n_sections: int) -> str:
    """Which lines each section covers (the code decides: an even split in song order)."""
    spans = []
    for s in range(n_sections):
        members = [line.index for line in lines if section_of(line.index, len(lines), n_sections) == s]
        spans.append(f"section {s}: lines {members[0]}-{members[-1]}")
    return "; ".join(spans)


def _scene_instruction(lines: list[LyricLine]) -> str:
    return (f"exactly one scene per lyric line ({len(lines)} scenes, lines {lines[0].index} to {lines[-1].index}, in "
            "order). Each scene: `line` (the number), `lyric` (the line copied exactly), `prompt` (a concrete "
            f"Stable Diffusion prompt of at most {MAX_TOKENS} CLIP tokens, about 50 words: subject, setting, light, "
            "style), `negative_prompt` (what to avoid). Never change or add lyrics. Answer as JSON.")


def _scenes_from_answer(items: list, lines: list[LyricLine], n_sections: int, fit: Callable[[str], str]) -> list[Scene]:
    """The model's scenes with what the code decides: section, seed, prompts cut to fit CLIP."""
    scenes = []
    for item in items if isinstance(items, list) else []:
        item = item if isinstance(item, dict) else {}
        line = item.get("line")
        section = section_of(line, len(lines), n_sections) if isinstance(line, int) and 0 <= line < len(lines) else 0
        scenes.append(Scene(line=line, lyric=str(item.get("lyric", "")), section=section,
                            prompt=fit(str(item.get("prompt", "")).strip()),
                            negative_prompt=fit(str(item.get("negative_prompt") or DEFAULT_NEGATIVE).strip()),
                            seed=scene_seed(line) if isinstance(line, int) else line))
    return scenes


def _sections_from_answer(items: list, lines: list[LyricLine], n_sections: int) -> list[dict]:
    sections = [{"name": str(s.get("name") or f"Part {i + 1}"), "description": str(s.get("description", ""))}
                for i, s in enumerate(items if isinstance(items, list) else []) if isinstance(s, dict)]
    return (sections + [{"name": f"Part {i + 1}", "description": ""} for i in range(len(sections), n_sections)]
            )[:n_sections]


def _ask_scenes(client, messages: list[dict], schema: dict, name: str, part: list[LyricLine],
                lines: list[LyricLine], n_sections: int, count_tokens, fit, history: list[dict],
                max_tokens: int | None, scenes_of=lambda answer: answer.get("scenes")) -> tuple[dict, list[Scene]]:
    """One answer holding the scenes of `part`, checked; its problems go back once."""
    sections = [{"name": f"Part {i + 1}", "description": ""} for i in range(n_sections)]
    for repair in (False, True):
        answer = client.json(messages, schema, name=name, max_tokens=max_tokens)
        scenes = _scenes_from_answer(scenes_of(answer), lines, n_sections, fit)
        draft = Plan(title="", plot="", sections=sections, scenes=scenes, source="llm", lyrics_sha256="")
        problems = check(draft, part, count_tokens)
        history.append({"round": len(history), "feedback": f"({name}{', repair' if repair else ''})",
                        "problems": problems})
        if not problems:
            return answer, scenes
        if repair:
            raise ReelworksError(f"the LLM's plan still fails its checks after one repair round: {problems[0]}"
                                 + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))
        log.warning("the LLM's %s failed %d checks; sending them back once", name, len(problems))
        messages = [*messages, {"role": "assistant", "content": json.dumps(answer)},
                    {"role": "user", "content": "The plan has these problems:\n- " + "\n- ".join(problems[:20])
                     + f"\nFix them and answer with the whole corrected JSON. The lyrics, one numbered line "
                       f"each:\n{_numbered(part)}"}]
    raise AssertionError("unreachable")


def llm_plan(client, lines: list[LyricLine], count_tokens: Callable[[str], int], *, sections: int = DEFAULT_SECTIONS,
             brief: str = "", rounds: int = DEFAULT_ROUNDS, feedback: list[str] | None = None,
             max_tokens: int | None = None, fit: Callable[[str], str] = lambda text: text) -> Plan:
    """The conversation: pitches, a feedback round per note of the user's (none without), the
    plan (section by section for a long song), one repair round for each answer."""
    n_sections = max(1, min(sections, len(lines)))
    notes = list(feedback or [])[:rounds]
    lyrics_block = f"The lyrics, one numbered line each:\n{_numbered(lines)}"
    messages = [{"role": "system", "content": ROLE},
                {"role": "user", "content": f"{lyrics_block}\n\n{('Brief: ' + brief) if brief else ''}\n"
                 "Pitch three ideas for the music video. Answer as JSON: "
                 '{"pitches": [{"title": "...", "idea": "one or two sentences"}]}'}]
    history: list[dict] = []
    pitch_tokens = min(max_tokens, 256) if max_tokens else None  # pitches are short; the plan needs room
    answer = client.json(messages, PITCHES_SCHEMA, name="pitches", max_tokens=pitch_tokens)
    history.append({"round": 0, "feedback": "", "pitches": answer.get("pitches", [])})
    for number, note in enumerate(notes, start=1):
        messages += [{"role": "assistant", "content": json.dumps(answer)},
                     {"role": "user", "content": f"Feedback: {note}\nRework the pitches. {lyrics_block}\n"
                      'Answer as JSON: {"pitches": [{"title": "...", "idea": "..."}]}'}]
        answer = client.json(messages, PITCHES_SCHEMA, name="pitches", max_tokens=pitch_tokens)
        history.append({"round": number, "feedback": note, "pitches": answer.get("pitches", [])})
    messages.append({"role": "assistant", "content": json.dumps(answer)})
    spans = _sections_text(lines, n_sections)
    if not is_long(lines):
        messages.append({"role": "user", "content": (
            f"Now write the final plan. {lyrics_block}\n\nGive a general plot, exactly {n_sections} sections "
            f"({spans}) and {_scene_instruction(lines)}")})
        answer, scenes = _ask_scenes(client, messages, plan_schema(lines, n_sections), "plan", lines, lines,
                                     n_sections, count_tokens, fit, history, max_tokens)
        outline = answer
    else:
        # A long song: the outline first, then each section's scenes in an answer of its own,
        # with the plot and that section's lines, so no answer has to hold the whole song.
        messages.append({"role": "user", "content": (
            f"Now outline the final plan. {lyrics_block}\n\nGive a title, a general plot and exactly "
            f"{n_sections} sections ({spans}), each with a name and a description of its look. Answer as JSON.")})
        outline = client.json(messages, outline_schema(n_sections), name="outline", max_tokens=max_tokens)
        named = _sections_from_answer(outline.get("sections"), lines, n_sections)
        scenes = []
        for s, section in enumerate(named):
            members = [line for line in lines if section_of(line.index, len(lines), n_sections) == s]
            for start in range(0, len(members), MAX_SCENES_PER_ANSWER):
                part = members[start:start + MAX_SCENES_PER_ANSWER]
                ask = [{"role": "system", "content": ROLE}, {"role": "user", "content": (
                    f"The video's plot: {outline.get('plot', '')}\nThis is section {s} of {n_sections}, "
                    f"\"{section['name']}\": {section['description']}\nIts lyrics, one numbered line each:\n"
                    f"{_numbered(part)}\n\nWrite {_scene_instruction(part)}")}]
                schema = {"type": "object", "properties": {"scenes": scenes_schema(part)}, "required": ["scenes"]}
                _, part_scenes = _ask_scenes(client, ask, schema, f"section {s} lines {part[0].index}-"
                                             f"{part[-1].index}", part, lines, n_sections, count_tokens, fit,
                                             history, max_tokens)
                scenes += part_scenes
    plan = Plan(title=str(outline.get("title", "")), plot=str(outline.get("plot", "")),
                sections=_sections_from_answer(outline.get("sections"), lines, n_sections), scenes=scenes,
                source="llm", lyrics_sha256=lyrics_fingerprint(lines))
    plan.rounds = history
    return _finish(plan, lines)


# --------------------------------------------------------------------------- the step


def read_plan_from(uri: str, lines: list[LyricLine]) -> Plan:
    """A plan the user edited: a `prompts.csv`, or a `plan.json` from an earlier run."""
    if uri.endswith(".json"):
        plan = Plan.from_dict(storage.read_json(uri))
        plan.source, plan.rounds, plan.lyrics_sha256 = "plan.json", [], lyrics_fingerprint(lines)
        return plan
    return from_csv(storage.read_text(uri), lines, source=uri)


def _never_answered(client) -> bool:
    """No request of this client got any HTTP answer (only refused connections and timeouts)."""
    return not any(attempt.get("status") is not None for exchange in getattr(client, "transcript", [])
                   for attempt in exchange.get("attempts", []))


def make_plan(lyrics: str, output: str, *, brief: str = "", rounds: int = DEFAULT_ROUNDS,
              feedback: str | None = None, plan_from: str | None = None, sections: int = DEFAULT_SECTIONS,
              client=None, use_llm: bool = True, max_tokens: int | None = None) -> dict:
    """Write `plan.json`, `prompts.csv`, `transcript.json` (with an LLM) and `report/` below
    `output`. `client`: an `llm.LLMClient` (default: from settings; None there -> template).
    `rounds`: at most this many feedback rounds, one per line of the `feedback` file (none
    without one). `plan_from`: an edited prompts.csv or plan.json, used instead of an LLM."""
    from reelworks import diffusion
    from reelworks.llm import LLMError
    from reelworks.metrics import job_metrics

    lines = lyrics_io.load(lyrics)
    if rounds < 0:
        raise ReelworksError("--rounds must be 0 or more")
    feedback_lines = None
    if feedback:
        feedback_lines = [ln.strip() for ln in storage.read_text(feedback).splitlines() if ln.strip()]
        if not feedback_lines:
            raise ReelworksError(f"{feedback} has no feedback lines")
    with job_metrics("musicvideo_plan") as m:
        tokenizer = diffusion.clip_tokenizer()
        count_tokens = token_counter()
        fit = lambda text: diffusion.fit_prompt(tokenizer, text)  # noqa: E731 - CLIP's 77 tokens, counted
        if plan_from:
            plan = read_plan_from(plan_from, lines)
            problems = check(plan, lines, count_tokens)
            if problems:
                raise ReelworksError(f"{plan_from} does not match the lyrics: {problems[0]}"
                                     + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))
            plan = _finish(plan, lines)
            note = f"Scenes read from `{plan_from}`; no LLM was asked."
        else:
            if client is None and use_llm:
                from reelworks import llm

                client = llm.LLMClient.from_settings()
            plan = None
            if client is None:
                note = ("No LLM is configured (REELWORKS_LLM_BASE_URL): this plan comes from the deterministic "
                        "template (lyric line + section mood + style).")
            else:
                try:
                    plan = llm_plan(client, lines, count_tokens, sections=sections, brief=brief, rounds=rounds,
                                    feedback=feedback_lines, max_tokens=max_tokens, fit=fit)
                    note = f"Planned by the LLM `{getattr(client, 'model', '?')}` in {len(plan.rounds)} rounds."
                except LLMError as exc:
                    if not (exc.unreachable and _never_answered(client)):
                        raise
                    note = (f"No LLM answered ({exc}): this plan comes from the deterministic template "
                            "(lyric line + section mood + style).")
            if plan is None:
                log.warning("%s", note)
                plan = template_plan(lines, sections, brief, fit=fit)
        problems = check(plan, lines, count_tokens)
        if problems:  # the template and the CSV were checked above; this guards the code itself
            raise ReelworksError(f"the plan fails its checks: {problems[0]}")
        m.items.inc(len(plan.scenes))
        report = plan_report(plan, note)
        with storage.output_dir(output) as tmp:
            local = str(tmp)
            if plan.source == "llm":
                client.save_transcript(storage.join(local, "transcript.json"))
            storage.write_text(storage.join(local, "prompts.csv"), to_csv(plan))
            report.save(storage.join(local, "report"))
            # plan.json last: a folder with it is complete.
            storage.write_text(storage.join(local, "plan.json"), json.dumps(plan.to_dict(), indent=2))
    return {"plan": plan, "report": report, "output": output}


def plan_report(plan: Plan, note: str):
    from reelworks.reports import Report, escape

    report = Report(f"Music video plan: {plan.title}")
    report.text(note)
    report.heading("Plot")
    report.text(escape(plan.plot) or "(none)")  # the LLM's words: shown as written, never as markup
    if plan.rounds:
        report.heading("Rounds")
        for round_ in plan.rounds:
            if "pitches" in round_:
                label = "First pitches" if not round_["feedback"] else f"Feedback: {escape(round_['feedback'])}"
                report.text(f"**Round {round_['round']}.** {label}")
                report.table(["pitch", "idea"], [[p.get("title", ""), p.get("idea", "")] for p in round_["pitches"]])
            else:
                status = "passed its checks" if not round_["problems"] else \
                    f"failed {len(round_['problems'])} checks: " + escape("; ".join(round_["problems"][:5]))
                report.text(f"**Round {round_['round']}.** {escape(round_['feedback'])} {status}")
    report.heading("Sections")
    report.table(["#", "name", "description"], [[i, s["name"], s["description"]] for i, s in enumerate(plan.sections)])
    report.heading("Scenes")
    report.table(["line", "time (s)", "section", "lyric", "prompt", "negative", "seed"],
                 [[s.line, "" if s.time_s is None else s.time_s, plan.sections[s.section]["name"], s.lyric, s.prompt,
                   s.negative_prompt, s.seed] for s in plan.scenes])
    report.metric("scenes", len(plan.scenes))
    report.metric("sections", len(plan.sections))
    report.metric("llm_rounds", len(plan.rounds))
    return report
