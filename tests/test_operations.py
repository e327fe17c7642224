"""What an operator sees of a real run: both processes as shipped, their metrics, probes and logs.

`qa-bot` runs in HTTP mode with two serving processes (prometheus-client's multiprocess mode,
summed on the bot's one port) and JSON logs; a real worker with a tiny model and plain-text
logs; a private redis-server; the Slack fake. One run of questions (answered, refused before a
placeholder, a follow-up from a button, a vote) serves every test of the module, which checks:

- the counters add up: every question received is counted once in exactly one final outcome,
  and the outcomes agree with what the Slack fake shows people;
- each question's log lines can be selected by its key across both processes, one line per
  step, with the same job id from the queue to the delivery;
- neither log holds a passage, a question's text, a token or a secret;
- every metric the dashboard and the alert rules query is one the two processes export.
"""
from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from slack_sdk.signature import SignatureVerifier

from bot.ui import blocks
from explain_core.queue.feedback import HELPFUL
from tests.support.bot_harness import (
    SIGNING_SECRET,
    block_action_payload,
    command_payload,
    event_callback,
    http_bot_process,
    mention_event,
    module_redis,
    slack,
    unique,
    wait_until,
)
from tests.support.ops_files import metric_names, queries
from tests.support.redis_server import RedisServer, free_port
from tests.support.slack_fake import BOT_TOKEN, BOT_USER_ID, TEAM_ID, SlackFake
from tests.support.worker_process import WorkerProcess

__all__ = ["module_redis", "slack"]

# xdist: the whole module runs in one test process, so its run (a bot, a worker, the questions) happens once.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("test_operations")]

NAMESPACE = "ops"
PASSAGE = ("Ada Lovelace lived in London. In 1843 she published the first algorithm intended "
           "for a machine, the Analytical Engine designed by Charles Babbage.")
QUESTIONS = ("Where did Ada live?", "Who designed the engine?", "When did she publish?", "What did she write?")
ANSWER_PREFIXES = ("Answer: ", "No answer in this passage")
REPLY_TIMEOUT_S = 180.0  # the worker's TensorFlow start-up is in the first answer
STEPS_BOT = ("received", "placeholder", "queued", "delivered", "outcome")
STEPS_WORKER = ("taken", "answered")


def http_get(url: str) -> tuple[int, str]:
    """Status and body of a GET, error statuses included."""
    try:
        with urllib.request.urlopen(url, timeout=10) as page:
            return page.status, page.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def samples(port: int) -> dict[str, float]:
    """The /metrics page on `port` as {sample with labels: value}."""
    status, text = http_get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            found[name] = float(value)
    return found


def total(found: dict[str, float], name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels`."""
    def matches(sample: str) -> bool:
        base, _, rest = sample.partition("{")
        return base == name and all(f'{k}="{v}"' in rest for k, v in labels.items())
    return sum(value for sample, value in found.items() if matches(sample))


@dataclass
class Run:
    """What the module's run did, for the tests to check."""

    bot_port: int
    worker_port: int
    bot_log: Path
    worker: WorkerProcess
    answered: list[str]  # keys of the questions that should be answered
    refused: str  # key of the question refused before its placeholder
    channels: list[str]  # where the answers are (the follow-up's in the first one's thread)
    slack: SlackFake


def post(url: str, body: str, content_type: str) -> requests.Response:
    stamp = str(int(time.time()))
    headers = {"Content-Type": content_type, "X-Slack-Request-Timestamp": stamp,
               "X-Slack-Signature": SignatureVerifier(SIGNING_SECRET).generate_signature(timestamp=stamp, body=body)}
    return requests.post(url, data=body.encode(), headers=headers, timeout=30)


def final_replies(fake: SlackFake, channel: str) -> list[dict[str, Any]]:
    """The bot's messages in `channel` that show an answer (or "no answer"): what people see."""
    return [m for m in fake.messages_in(channel) if m.get("user") == BOT_USER_ID
            and str(m.get("text") or "").startswith(ANSWER_PREFIXES)]


@pytest.fixture(scope="module")
def run(slack: SlackFake, module_redis: RedisServer, tiny_model_dir: Path,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    folder = tmp_path_factory.mktemp("ops")
    worker_port, bot_port = free_port(), free_port()
    worker = WorkerProcess.tiny(module_redis.url, NAMESPACE, tiny_model_dir, folder,
                                QA_METRICS_PORT=str(worker_port)).start()
    bot_log = folder / "bot.log"
    try:
        with http_bot_process(slack, module_redis.url, NAMESPACE, bot_log, WEB_CONCURRENCY="2",
                              QA_BOT_METRICS_PORT=str(bot_port), QA_LOG_FORMAT="json") as (_proc, url):
            yield _ask_everything(slack, url, worker, bot_port, worker_port, bot_log)
    finally:
        worker.stop()


def _ask_everything(fake: SlackFake, url: str, worker: WorkerProcess, bot_port: int, worker_port: int,
                    bot_log: Path) -> Run:
    """The questions of the run, until each has its final message. Each is asked by another person,
    so none waits behind another (one question per person in the stream) or meets a person's limit."""
    form = "application/x-www-form-urlencoded"
    answered: list[str] = []
    channels: list[str] = []
    askers: list[str] = []
    for question in QUESTIONS[:2]:  # slash commands; with two serving processes, each may take any
        channel = unique("C")
        askers.append(unique("U"))
        payload = command_payload(fake, f"{question} | {PASSAGE}", channel=channel, user=askers[-1])
        assert post(url, urlencode(payload), form).status_code == 200
        answered.append(f"command:{payload['team_id']}:{payload['trigger_id']}")
        channels.append(channel)
    channel = unique("C")  # a mention in a thread about its root message
    root = fake.add_message(channel, {"user": "UAUTHOR", "text": PASSAGE})
    event = mention_event(fake, channel, QUESTIONS[2], thread_ts=root["ts"], user=unique("U"))
    assert post(url, json.dumps(event_callback(event)), "application/json").status_code == 200
    answered.append(f"event:{TEAM_ID}:{channel}:{event['ts']}")
    channels.append(channel)

    closed = unique("C")  # refused before any placeholder: Slack will not let the bot post there
    fake.close_channel(closed)
    payload = command_payload(fake, f"{QUESTIONS[3]} | {PASSAGE}", channel=closed, user=unique("U"))
    assert post(url, urlencode(payload), form).status_code == 200
    refused = f"command:{payload['team_id']}:{payload['trigger_id']}"
    response_id = payload["response_url"].rsplit("/", 1)[1]
    [told] = fake.wait_for(lambda: fake.responses(response_id), 30, "the refusal through the response_url")
    assert "I can't post here" in told["text"]  # what Slack's record shows the asker

    worker.wait_ready()
    for channel in channels:
        fake.wait_for(lambda channel=channel: final_replies(fake, channel), REPLY_TIMEOUT_S, f"the answer in {channel}")
    # Buttons under the first answer, by its asker (whose /explain passage is private to them):
    # a vote (no question), then "Explain another way" (a question).
    [reply] = final_replies(fake, channels[0])
    elements = [e for block in reply["blocks"] if block["type"] == "actions" for e in block["elements"]]
    [answer_tag] = [e["value"] for e in elements if e["action_id"] == blocks.ACTION_OTHER_ANSWERS]
    for action, value in ((blocks.ACTION_FEEDBACK, f"{HELPFUL} {answer_tag}"),
                          (blocks.ACTION_ANOTHER_WAY, f"grad_x_input {answer_tag}")):
        click = block_action_payload(fake, channels[0], reply, action, value, user=askers[0])
        assert post(url, urlencode({"payload": json.dumps(click)}), form).status_code == 200
    fake.wait_for(lambda: [m for m in fake.messages_in(channels[0]) if m.get("thread_ts") == reply["ts"]
                           and str(m.get("text") or "").startswith(ANSWER_PREFIXES)], REPLY_TIMEOUT_S,
                  "the answer explained another way")
    [followup] = [line["key"] for line in bot_lines(bot_log)
                  if line.get("step") == "received" and line["key"].startswith("another:")]
    answered.append(followup)
    # Every question's last log line (its outcome, then its delivery) is written before the scrape.
    wait_until(lambda: all(step_lines(bot_log, key, "delivered") for key in answered), 30, "every delivery logged")
    return Run(bot_port, worker_port, bot_log, worker, answered, refused, channels, fake)


def bot_lines(log: Path) -> list[dict[str, Any]]:
    """The bot's log lines (QA_LOG_FORMAT=json: one object a line; anything else that reaches
    stderr, such as a warning Python prints itself, is not the bot's logging and is left out)."""
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


def step_lines(log: Path, key: str, step: str) -> list[dict[str, Any]]:
    return [line for line in bot_lines(log) if line.get("key") == key and line.get("step") == step]


def test_counters_add_up_to_what_slack_shows(run: Run) -> None:
    found = samples(run.bot_port)
    received = total(found, "qa_bot_questions_received_total")
    outcomes = total(found, "qa_bot_outcomes_total")
    assert received == outcomes == len(run.answered) + 1
    assert total(found, "qa_bot_questions_received_total", entry="slash_command") == 3
    assert total(found, "qa_bot_questions_received_total", entry="message") == 1
    assert total(found, "qa_bot_questions_received_total", entry="another_way") == 1
    # What people saw: one final answer per answered question, one refusal, nothing else.
    shown = sum(len(final_replies(run.slack, channel)) for channel in run.channels)
    assert total(found, "qa_bot_outcomes_total", outcome="answered") \
        + total(found, "qa_bot_outcomes_total", outcome="no_answer") == shown == len(run.answered)
    assert total(found, "qa_bot_outcomes_total", outcome="refused", reason="cannot_post") == 1
    # Each question has exactly one outcome line, in one of the two processes.
    for key in (*run.answered, run.refused):
        assert len(step_lines(run.bot_log, key, "outcome")) == 1, key
    assert total(found, "qa_bot_placeholder_seconds_count") == len(run.answered)
    assert total(found, "qa_bot_final_message_seconds_count") == len(run.answered)
    assert total(found, "qa_bot_button_clicks_total", action=blocks.ACTION_FEEDBACK) == 1
    assert total(found, "qa_bot_slack_calls_total", method="chat.update", result="ok") >= len(run.answered)
    assert total(found, "qa_bot_slack_calls_total", method="chat.postMessage", result="is_archived") == 1
    wait_until(lambda: total(samples(run.bot_port), "qa_bot_pending_placeholders") == 0, 30,
               "every placeholder untracked (after its pictures)")
    # Every attempt of every Slack call the serving processes made, whatever made it (the reply flow,
    # live progress, the follow-up's reads, the picture's upload steps), is counted once by method.
    # auth.test is the start-up check, made before the serving processes exist.
    made = Counter(c.method for c in run.slack.calls() if c.method != "auth.test")
    found = samples(run.bot_port)
    assert {method: total(found, "qa_bot_slack_calls_total", method=method) for method in made} == made
    assert total(found, "qa_bot_slack_calls_total", method="response_url", result="ok") == 1  # the refusal
    worker = samples(run.worker_port)
    assert total(worker, "qa_worker_jobs_total", outcome="answered") == len(run.answered)
    assert total(worker, "qa_worker_compute_seconds_count", method="vanilla") == len(run.answered) - 1
    assert total(worker, "qa_worker_compute_seconds_count", method="grad_x_input") == 1


def test_one_question_followed_by_its_key_across_both_processes(run: Run) -> None:
    key = run.answered[0]
    bot = [line for line in bot_lines(run.bot_log) if line.get("key") == key]
    worker = [line for line in run.worker.log().splitlines() if f" key={key} " in line]
    assert [line["step"] for line in bot] == ["received", "placeholder", "queued", "outcome", "delivered"]
    assert [re.search(r"INFO explain_core.worker: (\w+) ", line).group(1) for line in worker] == list(STEPS_WORKER)
    job = bot[2]["job"]
    assert job and all(f" job={job} " in line for line in worker)
    assert bot[4]["job"] == job  # the delivery names the job the worker answered
    refused = [line["step"] for line in bot_lines(run.bot_log) if line.get("key") == run.refused]
    assert refused == ["received", "outcome"]


def test_logs_of_the_run_hold_no_passage_question_or_secret(run: Run) -> None:
    logs = run.bot_log.read_text() + run.worker.log()
    for secret in (BOT_TOKEN, SIGNING_SECRET, PASSAGE[:30], "Analytical Engine", *QUESTIONS):
        assert secret not in logs, secret
    assert "Traceback" not in logs


def test_probes_of_both_processes(run: Run) -> None:
    for port in (run.bot_port, run.worker_port):
        assert http_get(f"http://127.0.0.1:{port}/healthz") == (200, '{"status": "alive"}')
        status, body = http_get(f"http://127.0.0.1:{port}/readyz")
        assert status == 200 and json.loads(body)["status"] == "ready", body
    assert set(json.loads(http_get(f"http://127.0.0.1:{run.worker_port}/readyz")[1])["checks"]) == {"redis", "model"}


def test_every_query_of_the_dashboard_and_the_alerts_reads_an_exported_metric(run: Run) -> None:
    exported = {sample.partition("{")[0] for port in (run.bot_port, run.worker_port) for sample in samples(port)}
    used = set().union(*(metric_names(expr) for expr in queries()))
    assert "qa_bot_outcomes_total" in used and "process_resident_memory_bytes" in used  # the parse found them
    assert used <= exported, sorted(used - exported)
