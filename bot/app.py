"""`qa-bot`: build the Bolt app from settings and run it in Socket Mode or HTTP mode.

Socket Mode (the default) needs no public URL, which is what a first install wants. HTTP
mode (`BOT_MODE=http`) serves `/slack/events` with Hypercorn through `bot.http.SlackFront`,
which refuses what cannot be Slack's request before reading its body and checks every
signature. Either way `start` builds the services and starts the result consumer thread
that posts answers, once per serving process.

Listeners are lazy: Bolt runs their short `ack` part before answering Slack and the rest
afterwards on a thread pool, so the acknowledgement never waits for Redis, Slack or a busy
pool, and Slack always hears back within its 3 seconds.

`main` also serves /metrics, /healthz and /readyz on `QA_BOT_METRICS_PORT` (`serve_ops`), once
for all the serving processes, and sets up the log format (`QA_LOG_FORMAT`) of every process.
"""
from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from slack_bolt import App, BoltContext
from slack_bolt.authorization.authorize import InstallationStoreAuthorize
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.oauth.state_store import OAuthStateStore

from bot.http import EVENTS_PATH, SlackFront, serve
from bot.installs import oauth_settings, open_stores
from bot.listeners import register_listeners
from bot.metrics import process_metrics, serving_registry, shared_between
from bot.outcome.delivery import Delivery
from bot.outcome.progress import LiveProgress
from bot.outcome.sweeper import Sweeper
from bot.services import CONTEXT_KEY, Services, web_client
from bot.settings import SETUP_SECTION, BotSettings
from bot.workspaces import Installations
from explain_core.errors import ConfigError
from explain_core.ops import Check, OpsServer, configure_logging, log_format, redis_check
from explain_core.queue import JobQueue
from explain_core.settings import read_or_exit

log = logging.getLogger("bot")

LISTENER_THREADS = 16
SCRAPE_TIMEOUT_S = 5  # a scrape reads a few Redis counts; a Redis that hangs must not hang the scraper


def build_app(settings: BotSettings, services: Services, states: OAuthStateStore | None = None) -> App:
    """The Bolt app with every listener, each handed `services` through the context.

    One workspace (SLACK_BOT_TOKEN) or many: with `services.flow.installations` (and the OAuth
    `states`), Bolt's OAuth flow installs the app on `/slack/install` and `/slack/oauth_redirect`
    and each request is authorized with its workspace's installation.

    It checks no signatures: in HTTP mode `bot.http.SlackFront` does, before Bolt sees a byte
    (Bolt's own check logs a forged body whole), and Socket Mode has none to check. Serve it
    only through `SlackFront` or Socket Mode.
    """
    common: dict[str, Any] = {
        "process_before_response": True,  # ack parts run before the response; work is lazy
        "request_verification_enabled": False,
        "listener_executor": ThreadPoolExecutor(max_workers=LISTENER_THREADS, thread_name_prefix="listener"),
    }
    installations = services.flow.installations
    if installations is None:
        # The token, not `client=`: Bolt also reads SLACK_BOT_TOKEN and warns at every start when
        # given a client as well (bolt-python#983). Its own client, used only for its auth.test
        # (main() has checked the token already), is pointed where ours points just below.
        app = App(token=settings.bot_token, token_verification_enabled=False, **common)
        app.client.base_url = services.client.base_url  # SLACK_API_URL
        app.client.timeout = services.client.timeout
        app.client.retry_handlers = services.client.retry_handlers
    else:
        if settings.oauth is None or states is None:
            raise ValueError("many workspaces need SLACK_CLIENT_ID/SLACK_CLIENT_SECRET and a state store")
        # Bolt copies this client's settings into each request's client (with its workspace's token),
        # and authorizes, installs and rotates tokens through it: all at SLACK_API_URL.
        client = WebClient(base_url=settings.api_url, timeout=services.client.timeout,
                           retry_handlers=services.client.retry_handlers)
        app = App(client=client, oauth_settings=oauth_settings(settings.oauth, installations.store, states),
                  authorize=InstallationStoreAuthorize(  # type: ignore[arg-type]  # Bolt takes its own Authorize
                      logger=log, installation_store=installations.store, client_id=settings.oauth.client_id,
                      client_secret=settings.oauth.client_secret, client=client, cache_enabled=True,
                      token_rotation_expiration_minutes=settings.oauth.token_rotation_minutes),
                  **common)

    @app.middleware
    def attach_services(context: BoltContext, next: Callable[[], Any]) -> Any:  # noqa: A002 - Bolt's name
        context[CONTEXT_KEY] = services
        return next()

    register_listeners(app)
    return app


def open_installations(settings: BotSettings) -> tuple[Installations | None, OAuthStateStore | None]:
    """Many workspaces (`settings.oauth`): the installations and the install flow's states, from
    DATABASE_URL; (None, None) for SLACK_BOT_TOKEN's one workspace. ConfigError for a bad key or URL."""
    if settings.oauth is None:
        return None, None
    stores = open_stores(settings.oauth)
    return Installations(stores.installations, settings.oauth, web_client(settings, retries=False)), stores.states


def start(settings: BotSettings) -> App:
    """The bot of this process: its services built, its result consumer and sweeper running.

    Both modes call it once per serving process; in HTTP mode that is each Hypercorn worker
    process (`http_app_from_env`), after it starts, because the consumer is a thread.
    """
    queue = JobQueue.connect(settings.redis, namespace=settings.namespace,
                              max_per_user=settings.max_per_user, max_per_channel=settings.max_per_channel,
                              max_per_team=settings.max_per_team,
                              team_slots=settings.team_slots if settings.oauth is not None else 0)
    installations, states = open_installations(settings)
    services = Services.create(settings, queue, process_metrics(), installations)
    Delivery(services.flow).start()
    Sweeper(services.flow).start()
    LiveProgress(services.flow).start()
    return build_app(settings, services, states)


def http_app_from_env() -> SlackFront:
    """HTTP mode's ASGI app for this serving process, from the environment.

    Hypercorn calls it in each worker (`bot.http.server_config`), in a fresh interpreter when
    WEB_CONCURRENCY > 1, so it sets up logging and reads the settings itself.
    """
    _configure_logging()
    settings = read_or_exit("qa-bot", BotSettings.from_env)
    return SlackFront(start(settings), settings)


def _configure_logging() -> None:
    configure_logging(read_or_exit("qa-bot", log_format))


def serve_ops(settings: BotSettings, checks: Mapping[str, Check] | None = None) -> OpsServer | None:
    """/metrics, /healthz and /readyz on `QA_BOT_METRICS_PORT` (0: none), from this process, for
    every serving process (`bot.metrics.serving_registry`). Ready: Redis answers, and `checks`
    (Socket Mode: the connection is open). Slack's tokens are not asked again at each probe:
    `main` checked them before anything started, and the bot does not start without them.

    A port that is taken is logged and the bot serves without it: answering people matters more
    than being watched, and the missing port shows in the operator's scrape."""
    if not settings.metrics_port:
        return None
    ops = OpsServer(serving_registry(JobQueue(settings.redis.client(SCRAPE_TIMEOUT_S), settings.namespace)),
                    {"redis": redis_check(settings.redis), **(checks or {})})
    try:
        return ops.serve(settings.metrics_port, settings.metrics_host)
    except OSError as exc:
        log.error("no /metrics, /healthz or /readyz: cannot listen on %s port %d (%s); see QA_BOT_METRICS_PORT",
                  settings.metrics_host, settings.metrics_port, exc.strerror or exc)
        return None


def check_slack(settings: BotSettings) -> str | None:
    """Why Slack will not take this bot, in one line for a person, or None: a token it rejects
    (auth.test; in Socket Mode apps.connections.open, which only hands out a URL) or Slack out
    of reach. Asked once without retries, before anything starts, so that a mistake is one
    line at once rather than a logged retry storm or slack_sdk's ERROR at connect. With many
    workspaces there is no token to check yet: the installations' database and key are."""
    if settings.oauth is not None:
        try:
            open_stores(settings.oauth).close()
        except ConfigError as exc:
            return str(exc)
        return None
    client = web_client(settings, retries=False)
    try:
        client.auth_test()
        if settings.mode == "socket":
            try:
                client.apps_connections_open(app_token=settings.app_token or "")
            except SlackApiError as exc:
                return (f"Slack rejected SLACK_APP_TOKEN ({exc.response.get('error')}): copy the App-Level Token "
                        "(xapp-..., scope connections:write) from Basic Information > App-Level Tokens into .env; "
                        f"see {SETUP_SECTION}")
    except SlackApiError as exc:
        return (f"Slack rejected SLACK_BOT_TOKEN ({exc.response.get('error')}): copy the Bot User OAuth Token "
                f"(xoxb-...) from OAuth & Permissions into .env; see {SETUP_SECTION}")
    except OSError as exc:
        return f"cannot reach Slack at {settings.api_url} ({exc}): check the network, or SLACK_API_URL"
    return None


def main() -> int:
    _configure_logging()
    settings = read_or_exit("qa-bot", BotSettings.from_env)
    problem = check_slack(settings)
    if problem:
        print(f"qa-bot: {problem}", file=sys.stderr)
        return 2
    if settings.mode == "http":
        log.info("starting in HTTP mode on %s port %d (path %s), %d process(es)%s", settings.bind_host,
                 settings.port, EVENTS_PATH, settings.web_concurrency,
                 f"; installs on {settings.oauth.install_path}" if settings.oauth else "")
        with shared_between(settings.web_concurrency):  # before Hypercorn starts its processes
            serve_ops(settings)
            serve(settings)
        return 0
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    log.info("starting in Socket Mode")
    handler = SocketModeHandler(start(settings), settings.app_token)
    serve_ops(settings, {"socket_mode": lambda: None if handler.client.is_connected() else "not connected to Slack"})
    handler.start()
    return 0


if __name__ == "__main__":
    sys.exit(main())
