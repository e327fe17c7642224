"""Many workspaces (issue 21): Slack's OAuth install, installations in a real database (SQLite and
PostgreSQL), each answer posted with its own workspace's token, token rotation, uninstall that forgets.

The bot is the real one behind `SlackFront` (`BotUnderTest` with `settings.oauth`); the install
flow is Bolt's, driven as a browser does (GET /slack/install, then Slack's redirect with a code
the fake hands out, `SlackFake.approve`); the test acts as the worker (`answer_jobs`). PostgreSQL
is a private server started from Debian's binaries (`PostgresServer`), a database per test.
"""
from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import redis
import requests
import sqlalchemy
from cryptography.fernet import Fernet

from bot.app import check_slack
from bot.installs import open_stores
from bot.settings import MANIFEST_SCOPES, BotSettings, OAuthConfig
from explain_core.errors import ConfigError
from explain_core.queue import Job, RedisTarget
from tests.support import ROOT
from tests.support.bot_harness import (
    SIGNING_SECRET,
    BotUnderTest,
    Reply,
    command_payload,
    event_callback,
    http_bot_process,
    module_redis,
    slack,
    unique,
    wait_until,
)
from tests.support.postgres_server import PostgresServer
from tests.support.slack_fake import CLIENT_ID, CLIENT_SECRET, Grant, SlackFake
from tests.support.work import answer_jobs

__all__ = ["module_redis", "slack"]

KEY = Fernet.generate_key().decode()
FORM = "application/x-www-form-urlencoded"
PASSAGE = "The Normans gave their name to Normandy, a region in France."
COOKIE = "slack-app-oauth-state"

# xdist: the whole module runs in one test process, so the PostgreSQL server starts once.
pytestmark = pytest.mark.xdist_group("bot.test_workspaces")


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    yield server
    server.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database: a SQLite file, or a database of its own on the private PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'installations.sqlite3'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    name = f"t_{uuid.uuid4().hex[:16]}"
    engine = sqlalchemy.create_engine(server.url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return server.url.rsplit("/", 1)[0] + "/" + name


def many(fake: SlackFake, redis_url: str, namespace: str, database_url: str, **oauth: Any) -> BotSettings:
    """HTTP mode with no SLACK_BOT_TOKEN: installations through OAuth, in `database_url`."""
    return BotSettings(mode="http", signing_secret=SIGNING_SECRET, api_url=fake.api_url, redis=RedisTarget(redis_url),
                       namespace=namespace, slack_retry_s=5.0,
                       oauth=OAuthConfig(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, token_key=KEY,
                                         scopes=MANIFEST_SCOPES, database_url=database_url, **oauth))


@pytest.fixture()
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'installations.sqlite3'}"


# -- the browser's side of the install flow ---------------------------------------------------------
def begin(bot: BotUnderTest) -> str:
    """Open the install page: its 'Add to Slack' link and its cookie carry the new state."""
    page = requests.get(f"{bot.base_url}/slack/install", timeout=10)
    assert page.status_code == 200, page.text
    state = re.search(rf"{COOKIE}=([^;]+)", page.headers["Set-Cookie"])
    assert state is not None and f"state={state.group(1)}" in page.text
    assert "scope=" + ",".join(MANIFEST_SCOPES) in page.text  # the manifest's scopes
    return state.group(1)


def redirect(bot: BotUnderTest, state: str, **query: str) -> requests.Response:
    """Slack sending the installer back to the bot (with the browser's state cookie)."""
    return requests.get(f"{bot.base_url}/slack/oauth_redirect", params={"state": state, **query},
                        headers={"Cookie": f"{COOKIE}={state}"}, timeout=30)


def install(bot: BotUnderTest, fake: SlackFake, team: str | None, *, enterprise: str | None = None,
            expires_in: int | None = None) -> Grant:
    state = begin(bot)
    done = redirect(bot, state, code=fake.approve(team, enterprise_id=enterprise, expires_in=expires_in))
    assert done.status_code == 200 and "Explain is installed" in done.text, done.text
    return fake.grant_of(team, enterprise)


# -- Slack's side: a question from a workspace ------------------------------------------------------
def ask(bot: BotUnderTest, team: str, channel: str, question: str = "Who gave their name to Normandy?",
        **extra: str) -> Reply:
    form = {**command_payload(bot.fake, f"{question} | {PASSAGE}", channel=channel), "team_id": team, **extra}
    reply = bot.post(urlencode(form), FORM)
    reply.response_id = form["response_url"].rsplit("/", 1)[1]
    assert reply.status == 200, reply
    return reply


def queued(bot: BotUnderTest, channel: str) -> Job:
    return wait_until(lambda: [j for j in bot.jobs() if j.reply_to.channel == channel], what=f"a job in {channel}")[0]


def answered(fake: SlackFake, channel: str) -> list[Any]:
    """The answers posted in `channel` (the placeholder replaced), each with the token it used."""
    return [c for c in fake.calls("chat.update", channel=channel) if c.status == 200 and "Normans" in str(c.args)]


def tokens_used(fake: SlackFake, channel: str) -> set[str | None]:
    return {c.token for c in fake.calls() if channel in (c.args.get("channel"), c.args.get("channel_id"))}


def traces(client: redis.Redis, namespace: str, team: str) -> list[str]:
    """Every key of `namespace` whose name or content holds `team`."""
    return [key for key in client.scan_iter(match=f"{namespace}:*")
            if team in key or any(team in str(item) for item in _content(client, key))]


def _content(client: redis.Redis, key: str) -> list[Any]:
    kind = client.type(key)
    if kind == "string":
        return [client.get(key)]
    if kind == "hash":
        return [f"{k}={v}" for k, v in client.hgetall(key).items()]
    if kind == "zset":
        return client.zrange(key, 0, -1)
    if kind == "list":
        return client.lrange(key, 0, -1)
    return [json.dumps(fields) for _id, fields in client.xrange(key)] if kind == "stream" else []


def uninstall(bot: BotUnderTest, team: str, kind: str = "app_uninstalled") -> None:
    """Slack revokes the team's tokens and tells the bot; returns once the installation is gone."""
    bot.fake.revoke(team)
    event = {"type": kind, **({"tokens": {"bot": ["UBOT"]}} if kind == "tokens_revoked" else {})}
    envelope = {**event_callback(event), "team_id": team, "authorizations": []}
    assert bot.post(json.dumps(envelope), "application/json").status == 200
    wait_until(lambda: installed(bot, team) is None, what=f"{team}'s installation deleted")


def installed(bot: BotUnderTest, team: str) -> Any:
    assert bot.installations is not None
    return bot.installations.store.find_installation(enterprise_id=None, team_id=team)


# -- the tests -------------------------------------------------------------------------------------
def test_two_workspaces_each_answered_with_its_own_token_and_an_uninstall_forgets_one(
        slack: SlackFake, module_redis, namespace: str, database_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bot")
    settings = many(slack, module_redis.url, namespace, database_url)
    team_a, team_b = unique("TA"), unique("TB")
    bot = BotUnderTest(slack, settings)
    try:
        grant_a, grant_b = install(bot, slack, team_a), install(bot, slack, team_b)
        assert grant_a.token != grant_b.token
        bot.start_delivery()
        # Questions from both workspaces at once; each answer in its own workspace with its own token.
        channel_a, channel_b = unique("CA"), unique("CB")
        ask(bot, team_a, channel_a)
        ask(bot, team_b, channel_b)
        jobs = {queued(bot, channel_a).reply_to.team, queued(bot, channel_b).reply_to.team}
        assert jobs == {team_a, team_b}
        answer_jobs(bot.queue)
        slack.wait_for(lambda: answered(slack, channel_a) and answered(slack, channel_b), what="both answers")
        assert tokens_used(slack, channel_a) == {grant_a.token}
        assert tokens_used(slack, channel_b) == {grant_b.token}

        # B's next question waits in line when B uninstalls: it is dropped unposted, and B's data goes.
        waiting = unique("CB")
        ask(bot, team_b, waiting)
        queued(bot, waiting)
        before = traces(bot.queue.redis, namespace, team_b)
        assert before  # documents, answers, recent questions, placeholders: there was something to forget
        uninstall(bot, team_b)
        wait_until(lambda: "app_uninstalled: forgot" in caplog.text, what="the purge")
        answer_jobs(bot.queue)  # the worker answers B's waiting job: nobody posts it
        wait_until(lambda: bot.queue.redis.xlen(bot.queue.keys.results) == 0, what="the result dropped and acked")
        assert traces(bot.queue.redis, namespace, team_b) == []
        assert answered(slack, waiting) == []
        print(f"uninstall purged {len(before)} keys holding {team_b}; {caplog.text.split('forgot')[1][:120]!r}")

        # A goes on answering.
        again = unique("CA")
        ask(bot, team_a, again)
        queued(bot, again)
        answer_jobs(bot.queue)
        slack.wait_for(lambda: answered(slack, again), what="A's next answer")
        assert tokens_used(slack, again) == {grant_a.token}
    finally:
        bot.close()

    # A restarted bot finds A's installation in the database; B's questions get Bolt's "not installed".
    bot = BotUnderTest(slack, settings)
    try:
        bot.start_delivery()
        after = unique("CA")
        ask(bot, team_a, after)
        queued(bot, after)
        answer_jobs(bot.queue)
        slack.wait_for(lambda: answered(slack, after), what="A's answer after a restart")
        assert tokens_used(slack, after) == {grant_a.token}
        refused = ask(bot, team_b, unique("CB"))
        assert refused.response_id is not None
        told = slack.wait_for(lambda: slack.responses(refused.response_id), what="B told it is not installed")
        assert "install" in json.dumps(told).lower()
    finally:
        bot.close()


def test_forged_replayed_expired_denied_and_codeless_redirects_are_refused(
        slack: SlackFake, module_redis, namespace: str, database_url: str) -> None:
    bot = BotUnderTest(slack, many(slack, module_redis.url, namespace, database_url, state_expiration_s=1))
    try:
        team = unique("T")
        forged = redirect(bot, "forged-state", code=slack.approve(team))
        assert forged.status_code == 401 and "already used, or it expired" in forged.text

        state = begin(bot)
        assert redirect(bot, state, error="access_denied").text.count("cancelled") == 1

        state = begin(bot)
        no_code = redirect(bot, state)
        assert no_code.status_code == 401 and "without an authorization code" in no_code.text

        state = begin(bot)
        other_browser = requests.get(f"{bot.base_url}/slack/oauth_redirect", timeout=10,
                                     params={"state": state, "code": slack.approve(team)})
        assert other_browser.status_code == 400 and "another browser" in other_browser.text

        state, issued = begin(bot), time.time()
        wait_until(lambda: time.time() > issued + 1.5, what="the state's lifetime (1 s here) to run out")
        expired = redirect(bot, state, code=slack.approve(team))
        assert expired.status_code == 401 and "expired" in expired.text

        state = begin(bot)
        code = slack.approve(team)
        assert redirect(bot, state, code=code).status_code == 200
        replayed = redirect(bot, state, code=code)
        assert replayed.status_code == 401 and "already used" in replayed.text
        assert requests.post(f"{bot.base_url}/slack/install", timeout=10).status_code == 405
        assert requests.get(f"{bot.base_url}/slack/oauth_redirect", params={"state": "x" * 3000},
                            timeout=10).status_code == 414
        assert [g.team_id for g in slack.grants.values() if g.team_id == team] == [team]  # installed once
    finally:
        bot.close()


def test_unknown_team_and_revoked_token_mid_delivery_each_have_a_clear_outcome(
        slack: SlackFake, module_redis, namespace: str, sqlite_url: str) -> None:
    bot = BotUnderTest(slack, many(slack, module_redis.url, namespace, sqlite_url))
    try:
        team_a, team_b = unique("TA"), unique("TB")
        install(bot, slack, team_a)
        grant_b = install(bot, slack, team_b)
        bot.start_delivery()
        # An event from a team that never installed the app: refused by Bolt, nothing queued or posted.
        stranger = unique("C")
        event = event_callback({"type": "app_mention", "channel": stranger, "user": "U1", "text": "<@UBOT> hi",
                                "ts": "1.0"})
        refused = bot.post(json.dumps({**event, "team_id": unique("TX"), "authorizations": []}), "application/json")
        assert refused.status in (200, 401)
        # B's token is revoked while its answer is on its way (no event yet): Slack refuses it, and the
        # asker still hears back through the command's response_url; A is unaffected.
        channel_a, channel_b = unique("CA"), unique("CB")
        ask(bot, team_a, channel_a)
        reply_b = ask(bot, team_b, channel_b)
        queued(bot, channel_a), queued(bot, channel_b)
        slack.revoke(team_b)
        answer_jobs(bot.queue)
        slack.wait_for(lambda: answered(slack, channel_a), what="A's answer")
        told = slack.wait_for(lambda: slack.responses(reply_b.response_id or ""), what="B's asker told")
        assert "token_revoked" in json.dumps(told)
        assert tokens_used(slack, channel_b) == {grant_b.token}
        assert not [c for c in slack.calls() if stranger in (c.args.get("channel"), c.args.get("channel_id"))]
        # Then Slack tells the bot: B's installation goes.
        uninstall(bot, team_b, "tokens_revoked")
        assert installed(bot, team_a) is not None
    finally:
        bot.close()


def test_a_token_that_expires_while_its_question_waits_is_refreshed_before_the_answer(
        slack: SlackFake, module_redis, namespace: str, database_url: str) -> None:
    # Tokens live 62 s and are refreshed within 60 s of their end: two seconds after the install,
    # the token of the waiting question is due, and then Slack stops taking it.
    bot = BotUnderTest(slack, many(slack, module_redis.url, namespace, database_url, token_rotation_minutes=1))
    try:
        team = unique("TR")
        first = install(bot, slack, team, expires_in=62)
        installed_at = time.time()
        bot.start_delivery()
        channel = unique("C")
        ask(bot, team, channel)
        queued(bot, channel)
        wait_until(lambda: time.time() > installed_at + 2.5, what="the token to be due", timeout=10)
        if slack.grant_of(team).token == first.token:
            slack.expire(team)  # Slack takes it no more
        answer_jobs(bot.queue)
        slack.wait_for(lambda: answered(slack, channel), what="the answer")
        fresh = slack.grant_of(team)
        assert fresh.token != first.token and answered(slack, channel)[0].token == fresh.token
        stored = installed(bot, team)
        assert stored is not None and stored.bot_token == fresh.token  # the refreshed token was saved
    finally:
        bot.close()


def test_an_org_wide_enterprise_install_answers_every_team_of_the_org(
        slack: SlackFake, module_redis, namespace: str, sqlite_url: str) -> None:
    bot = BotUnderTest(slack, many(slack, module_redis.url, namespace, sqlite_url))
    try:
        org = unique("E")
        grant = install(bot, slack, None, enterprise=org)
        bot.start_delivery()
        channels = [unique("C"), unique("C")]
        for channel in channels:  # two workspaces of the org, one installation
            ask(bot, unique("TG"), channel, enterprise_id=org, is_enterprise_install="true")
        assert {queued(bot, c).reply_to.enterprise_id for c in channels} == {org}
        answer_jobs(bot.queue)
        slack.wait_for(lambda: all(answered(slack, c) for c in channels), what="both answers")
        assert set().union(*(tokens_used(slack, c) for c in channels)) == {grant.token}
    finally:
        bot.close()


def test_tokens_are_encrypted_at_rest_and_a_wrong_key_is_one_clear_line(
        slack: SlackFake, module_redis, namespace: str, sqlite_url: str) -> None:
    settings = many(slack, module_redis.url, namespace, sqlite_url)
    bot = BotUnderTest(slack, settings)
    try:
        grant = install(bot, slack, unique("T"))
    finally:
        bot.close()
    raw = Path(sqlite_url.removeprefix("sqlite:///")).read_bytes()
    assert grant.token.encode() not in raw and b"xoxb" not in raw
    other = OAuthConfig(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, token_key=Fernet.generate_key().decode(),
                        scopes=MANIFEST_SCOPES, database_url=sqlite_url)
    with pytest.raises(ConfigError, match="QA_TOKEN_KEY does not decrypt"):
        open_stores(other)
    problem = check_slack(BotSettings(mode="http", signing_secret=SIGNING_SECRET, oauth=OAuthConfig(
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET, token_key="not-a-key", scopes=(), database_url=sqlite_url)))
    assert problem is not None and "QA_TOKEN_KEY is not a Fernet key" in problem


def test_qa_bot_as_shipped_installs_workspaces_and_logs_no_token(
        slack: SlackFake, module_redis, namespace: str, tmp_path: Path) -> None:
    """`qa-bot` with Bolt's variables and no bot token: the install flow in its own process (each
    Hypercorn worker opens the database itself), and neither a token nor the client secret in its log."""
    database = f"sqlite:///{tmp_path / 'installations.sqlite3'}"
    env = {"SLACK_BOT_TOKEN": "", "SLACK_CLIENT_ID": CLIENT_ID, "SLACK_CLIENT_SECRET": CLIENT_SECRET,
           "QA_TOKEN_KEY": KEY, "DATABASE_URL": database, "BIND_HOST": "127.0.0.1"}
    team = unique("T")
    with http_bot_process(slack, module_redis.url, namespace, tmp_path / "bot.log", **env) as (_proc, url):
        base = url.removesuffix("/slack/events")
        page = requests.get(f"{base}/slack/install", timeout=10)
        state = re.search(rf"{COOKIE}=([^;]+)", page.headers["Set-Cookie"])
        assert page.status_code == 200 and state is not None
        done = requests.get(f"{base}/slack/oauth_redirect", timeout=30, headers={"Cookie": f"{COOKIE}={state[1]}"},
                            params={"state": state[1], "code": slack.approve(team)})
        assert done.status_code == 200 and f"Team {team}" in done.text
    log = (tmp_path / "bot.log").read_text()
    assert "installs on /slack/install" in log
    assert slack.grant_of(team).token not in log and CLIENT_SECRET not in log and KEY not in log


def test_settings_choose_the_mode_from_the_variables() -> None:
    oauth = {"BOT_MODE": "http", "SLACK_SIGNING_SECRET": "s", "SLACK_CLIENT_ID": "1.2",
             "SLACK_CLIENT_SECRET": "client-secret-7f3a"}
    settings = BotSettings.from_env({**oauth, "QA_TOKEN_KEY": KEY, "SLACK_SCOPES": "chat:write,commands"})
    assert settings.oauth is not None and settings.bot_token is None
    assert settings.oauth.scopes == ("chat:write", "commands")
    assert settings.oauth.database_url.startswith("sqlite:///data/")
    assert KEY not in repr(settings.oauth) and "client-secret-7f3a" not in repr(settings.oauth)
    one = BotSettings.from_env({**oauth, "SLACK_BOT_TOKEN": "xoxb-1"})
    assert one.oauth is None and one.bot_token == "xoxb-1"  # a bot token keeps one workspace, as before
    with pytest.raises(ConfigError, match="QA_TOKEN_KEY is not set"):
        BotSettings.from_env(oauth)
    with pytest.raises(ConfigError, match="Socket Mode serves one workspace"):
        BotSettings.from_env({**oauth, "BOT_MODE": "socket", "SLACK_APP_TOKEN": "xapp-1", "QA_TOKEN_KEY": KEY})
    manifest = json.loads((ROOT / "manifest.distribution.json").read_text())
    assert tuple(manifest["oauth_config"]["scopes"]["bot"]) == MANIFEST_SCOPES
    assert manifest["oauth_config"]["redirect_urls"][0].endswith("/slack/oauth_redirect")
    single = json.loads((ROOT / "manifest.json").read_text())
    assert tuple(single["oauth_config"]["scopes"]["bot"]) == MANIFEST_SCOPES


def test_a_job_written_before_enterprise_fields_still_reads() -> None:
    old = json.loads((ROOT / "tests/queue/data/job_inline.json").read_text())
    job = Job.from_json(json.dumps(old))
    assert (job.reply_to.enterprise_id, job.reply_to.is_enterprise_install) == (None, False)
