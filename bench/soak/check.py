"""The invariants, checked at the end from the Slack fake's record and from Redis, and the report.

For every question that was acknowledged (and every one the bot showed anything for):
exactly one final visible outcome (an answer, or a message saying what happened), never two,
never a "failed" that an answer follows, never silence past the bound; an answer equals what
`explain_core` gives for that question and passage alone; at most one picture; every click on
an answer's buttons acknowledged and answered once; no channel shows another question's
passage. Then every process's peak RSS, what Redis keeps once the TTLs have passed, and its
memory against its start.
"""
from __future__ import annotations

import re
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.soak.load import Question
from bot.intake.extract import PdfLimits
from bot.intake.files import pdf_text
from bot.ui.blocks import ACTION_OTHER_ANSWERS, mrkdwn, shorten
from explain_core import defaults
from explain_core.errors import InputError, Unavailable
from tests.support.slack_fake import Call, SlackFake

PENDING = "Explaining “"
ANSWER_PREFIXES = ("Answer: ", "No answer in this passage")
MARKER = re.compile(r"Zq(\d+)x")
SCORE_TOLERANCE = 1e-4
OTHER_ANSWERS = "Top answers to “"  # "Other answers" posts them in the thread once, then tells a clicker they are there
IN_THREAD = "*thread"
# README ("Redis in production"): while Redis cannot be reached or refuses writes, a second delivery
# of an event cannot be recognised as one, so its asker may also read one of these private notices.
REDIS_NOTICES = tuple(Unavailable.WHY.values())
PERCENT = re.compile(r"\((<1%|\d+%)\)$")


def kind_of(text: str) -> str:
    """pending (the placeholder, or where the question is), answer, or told (what happened)."""
    if text.startswith(PENDING):
        return "pending"
    if text.startswith(ANSWER_PREFIXES):
        return "answer"
    return "told"


@dataclass
class Seen:
    """What one question's channel shows: each bot message's states in order, and the private notes."""

    messages: dict[str, list[tuple[float, str, str]]] = field(default_factory=dict)  # ts -> [(at, kind, text)]
    private: list[tuple[float, str, str]] = field(default_factory=list)  # (at, how, text) to the asker
    clicks: dict[str, list[str]] = field(default_factory=dict)  # reader -> texts shown to them
    uploads: int = 0
    texts: list[str] = field(default_factory=list)  # everything visible there, for the privacy check

    def finals(self) -> list[tuple[float, str, str]]:
        out = []
        for states in self.messages.values():
            at, kind, text = states[-1]
            if kind != "pending":
                out.append((at, kind, text))
        return sorted(out + [(at, "told", text) for at, _, text in self.private])


def read_record(fake: SlackFake, questions: list[Question]) -> dict[str, Seen]:
    """The fake's record, grouped by the questions' channels."""
    by_channel: dict[str, Seen] = {q.channel: Seen() for q in questions}
    askers = {q.channel: q.user for q in questions}
    for call in fake.calls():
        channel = str(call.args.get("channel") or call.args.get("channel_id") or "")
        seen = by_channel.get(channel)
        if seen is None or call.status != 200 or not (call.answer or {}).get("ok"):
            continue
        _take(call, seen, askers[channel])
    for q in questions:
        seen = by_channel[q.channel]
        for rid in q.response_ids:
            for body in fake.responses(rid):
                seen.private.append((q.asked_at, "response_url", str(body.get("text", ""))))
                seen.texts.append(str(body))
        for text in q.ack_texts:
            seen.private.append((q.asked_at, "ack", text))
        for click in q.clicks:
            seen.clicks.setdefault(click.user, []).extend(str(b.get("text", ""))
                                                          for b in fake.responses(click.response_id))
        uploads = fake.uploads(q.channel)
        seen.uploads = len(uploads)
        seen.texts += [f"{u.title} {u.alt_txt} {u.filename}" for u in uploads]
    return by_channel


def _take(call: Call, seen: Seen, asker: str) -> None:
    text = str(call.args.get("text") or "")
    if call.method == "chat.postMessage" and text.startswith(OTHER_ANSWERS):
        seen.clicks.setdefault(IN_THREAD, []).append(text)  # a click's answer, for everyone in the thread
        seen.texts.append(f"{text} {call.args.get('blocks')}")
    elif call.method == "chat.postMessage":
        ts = str((call.answer or {}).get("ts"))
        seen.messages.setdefault(ts, []).append((call.at, kind_of(text), text))
        seen.texts.append(f"{text} {call.args.get('blocks')}")
    elif call.method == "chat.update":
        seen.messages.setdefault(str(call.args.get("ts")), []).append((call.at, kind_of(text), text))
        seen.texts.append(f"{text} {call.args.get('blocks')}")
    elif call.method == "chat.postEphemeral":
        user = str(call.args.get("user"))
        if user == asker:
            seen.private.append((call.at, "ephemeral", text))
        else:
            seen.clicks.setdefault(user, []).append(text)
        seen.texts.append(f"{text} {call.args.get('blocks')}")


@dataclass
class Verdict:
    """The outcome of the checks: counts, violations by kind with the questions' stories, figures."""

    counts: Counter[str] = field(default_factory=Counter)
    violations: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    stories: dict[int, list[str]] = field(default_factory=dict)
    to_placeholder: list[float] = field(default_factory=list)
    to_final: list[float] = field(default_factory=list)
    exact_scores: int = 0
    finished: dict[int, float] = field(default_factory=dict)  # qid -> when its final outcome showed
    told: Counter[str] = field(default_factory=Counter)  # what people were told, by the message's gist

    def violate(self, kind: str, q: Question, detail: str, seen: Seen | None) -> None:
        self.violations[kind].append(q.qid)
        story = [f"{at:.3f} soak: {what}" for at, what in q.story]
        if seen is not None:
            story += [f"{at:.3f} slack {ts}: {kind}: {text[:160]!r}" for ts, states in seen.messages.items()
                      for at, kind, text in states]
            story += [f"{at:.3f} private {how}: {text[:160]!r}" for at, how, text in seen.private]
            story.append(f"pictures: {seen.uploads}; clicks: {seen.clicks}")
        self.stories.setdefault(q.qid, [f"question {q.qid} ({q.kind} by {q.user} in {q.channel} via {q.via}, "
                                        f"asked {q.asked_at:.3f}): {q.question!r}"])
        self.stories[q.qid] += [f"VIOLATION {kind}: {detail}", *story]


class Reference:
    """What explain_core answers for a question and its passage alone, on the soak's model."""

    def __init__(self, model_dir: Path) -> None:
        import explain_core

        self._explain = explain_core.explain
        self._model = explain_core.load_model(str(model_dir))
        self._limits = PdfLimits(max_chars=defaults.MAX_PASSAGE_CHARS, max_pages=defaults.MAX_PDF_PAGES,
                                 cpu_s=defaults.PDF_CPU_S, memory_mb=defaults.PDF_MEMORY_MB,
                                 timeout_s=60.0)

    def passage(self, q: Question) -> str:
        """The passage as the worker got it (a PDF's text layer as the bot reads it)."""
        assert q.passage is not None
        return pdf_text(q.pdf, "report.pdf", self._limits) if q.pdf is not None else q.passage

    def answer(self, q: Question) -> tuple[str, float, bool]:
        found = self._explain(q.question, self.passage(q), model=self._model)
        return found.answer, found.score, found.no_answer


def check(questions: list[Question], fake: SlackFake, reference: Reference, bound_s: float) -> Verdict:
    verdict = Verdict()
    record = read_record(fake, questions)
    for q in questions:
        seen = record[q.channel]
        verdict.counts["asked"] += 1
        shown = bool(seen.messages or seen.private)
        if not q.acked and not shown:
            verdict.counts["not acknowledged (Slack's error shown)"] += 1
            continue
        verdict.counts["acknowledged" if q.acked else "not acknowledged, yet shown"] += 1
        placeholder = min((states[0][0] for states in seen.messages.values() if states[0][1] == "pending"),
                          default=None)
        if placeholder is not None:
            verdict.to_placeholder.append(placeholder - q.asked_at)
        finals = seen.finals()
        if len(finals) > 1 and sum(what.startswith("deliver event") for _, what in q.story) > 1:
            finals = [f for f in finals if not (f[1] == "told" and f[2].startswith(REDIS_NOTICES))] or finals[:1]
        if not finals:
            verdict.violate("silence", q, f"nothing final shown (bound {bound_s:.0f} s)", seen)
            continue
        if len(finals) > 1:
            verdict.violate("two_outcomes", q, f"{len(finals)} final outcomes", seen)
        at, kind, text = finals[0]
        verdict.to_final.append(at - q.asked_at)
        verdict.finished[q.qid] = at
        verdict.counts["answered" if kind == "answer" else "told what happened"] += 1
        if kind != "answer":
            verdict.told[_gist(text)] += 1
        if at - q.asked_at > bound_s:
            verdict.violate("late", q, f"final outcome after {at - q.asked_at:.0f} s > {bound_s:.0f} s", seen)
        for states in seen.messages.values():
            kinds = [k for _, k, _ in states]
            if "told" in kinds and "answer" in kinds[kinds.index("told"):]:
                verdict.violate("failed_then_answer", q, "a message saying what happened became an answer", seen)
        if kind == "answer":
            _check_answer(verdict, q, text, reference, seen)
            if seen.uploads > 1:
                verdict.violate("pictures", q, f"{seen.uploads} pictures for one answer", seen)
        elif not q.expects_answer:
            verdict.counts["bad input told"] += 1
        for click in q.clicks:
            verdict.counts["clicks"] += 1
            answers = seen.clicks.get(click.user, []) + (seen.clicks.get(IN_THREAD, [])
                                                           if click.action_id == ACTION_OTHER_ANSWERS else [])
            if not click.acked and not answers:  # as for a question: Slack shows the clicker its own error
                verdict.counts["clicks not acknowledged (Slack's error shown)"] += 1
            elif len(answers) != 1:
                verdict.violate("click_answers", q, f"{click.action_id} answered {len(answers)} times", seen)
        others = {int(n) for text in seen.texts for n in MARKER.findall(text)} - {q.qid}
        if others:
            verdict.violate("privacy", q, f"shows the passage of question(s) {sorted(others)}", seen)
    return verdict


def _check_answer(verdict: Verdict, q: Question, text: str, reference: Reference, seen: Seen) -> None:
    if not q.expects_answer:
        verdict.violate("bad_input_answered", q, "an answer to input that should be refused", seen)
        return
    try:
        answer, score, no_answer = reference.answer(q)
    except InputError as exc:  # the bot read the passage, so explain_core must too
        verdict.violate("reference", q, f"explain_core refused the passage the bot answered from: {exc}", seen)
        return
    expected = "No answer in this passage" if no_answer else f"Answer: {mrkdwn(shorten(answer, 200))}"
    shown = PERCENT.sub("", text).rstrip()
    if shown != expected:
        verdict.violate("wrong_answer", q, f"shown {text!r}, explain_core gives {expected!r} ({score:.6f})", seen)
    elif q.score is not None:
        verdict.exact_scores += 1
        if abs(q.score - score) > SCORE_TOLERANCE:
            verdict.violate("wrong_confidence", q, f"shown {q.score:.6f}, explain_core gives {score:.6f}", seen)
    elif (m := PERCENT.search(text)) is None or m.group(1) != _percent(score):
        verdict.violate("wrong_confidence", q, f"shown {text!r}, explain_core gives {score:.6f}", seen)


def _percent(value: float) -> str:
    return "<1%" if 0 < value < 0.005 else f"{round(value * 100):d}%"


def _gist(text: str) -> str:
    """A told message without what varies (numbers, quoted names), to count messages by kind."""
    return re.sub(r"\d[\d,.]*", "N", re.sub(r"“[^”]*”|\S+\.(pdf|docx|txt|md)", "…", text))[:90]


def quantiles(values: list[float]) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return f"p50 {statistics.median(ordered):.2f} s, p99 {p99:.2f} s, max {ordered[-1]:.2f} s"


def report_lines(seed: int, verdict: Verdict, *, network: str, minutes: float, rate: float, elapsed_s: float,
                 faults: dict[str, int], touched: dict[str, int], peaks: dict[str, float],
                 redis_memory: tuple[int, int], leftovers: list[str], extra: dict[str, Any]) -> list[str]:
    lines = [f"soak: seed {seed}, {minutes:g} min at {rate:g} questions/s, hosts: {network}",
             "counts: " + ", ".join(f"{k} {v}" for k, v in sorted(verdict.counts.items())),
             f"answers checked against explain_core: {verdict.counts['answered']} (confidence exact to "
             f"{SCORE_TOLERANCE:g} for {verdict.exact_scores}, to the shown percent for the rest)",
             "told: " + "; ".join(f"{n} x {gist!r}" for gist, n in verdict.told.most_common()),
             f"question -> placeholder: {quantiles(verdict.to_placeholder)}",
             f"question -> final outcome: {quantiles(verdict.to_final)}",
             f"throughput: {verdict.counts['asked'] / max(elapsed_s, 1e-9):.2f} questions/s over {elapsed_s:.0f} s",
             "faults: " + ", ".join(f"{k} x{v} (touched {touched.get(k, 0)} questions)"
                                    for k, v in sorted(faults.items())),
             "peak RSS: " + ", ".join(f"{k} {v:.0f} MB" for k, v in sorted(peaks.items())),
             f"redis used_memory: start {redis_memory[0] / 1e6:.2f} MB, end {redis_memory[1] / 1e6:.2f} MB",
             *(f"{k}: {v}" for k, v in extra.items())]
    if leftovers:
        lines.append(f"keys holding text after their TTL: {leftovers[:20]}")
    total = sum(len(v) for v in verdict.violations.values())
    lines.append(f"violations: {total}" + ("" if not total else " (" + ", ".join(
        f"{k} {len(v)}" for k, v in sorted(verdict.violations.items())) + ")"))
    for _, story in sorted(verdict.stories.items()):
        lines += ["", f"--- replay with --seed {seed}", *story]
    return lines
