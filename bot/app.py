"""`qa-bot`: build the Bolt app from settings and run it in Socket Mode or HTTP mode.

Socket Mode (the default) needs no public URL, which is what a first install wants. HTTP
mode (`BOT_MODE=http`) serves `/slack/events` under gunicorn, a production WSGI server,
with Bolt checking every request's signature. Either way `start` builds the services and
starts the result consumer thread that posts answers, once per serving process.

Listeners are lazy: Bolt runs their short `ack` part before answering Slack and the rest
afterwards on a thread pool, so the acknowledgement never waits for Redis, Slack or a busy
pool, and Slack always hears back within its 3 seconds.
"""
from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from slack_bolt import App, BoltContext
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk.errors import SlackApiError

from bot.delivery import Delivery
from bot.listeners import register_listeners
from bot.services import CONTEXT_KEY, Services, web_client
from bot.settings import BotSettings
from explain_core.queue import JobQueue
from explain_core.settings import read_or_exit

log = logging.getLogger("bot")

EVENTS_PATH = "/slack/events"
LISTENER_THREADS = 16


def build_app(settings: BotSettings, services: Services) -> App:
    """The Bolt app with every listener, each handed `services` through the context."""
    app = App(
        signing_secret=settings.signing_secret,
        client=services.client,  # carries the bot token, SLACK_API_URL and the retry handlers
        process_before_response=True,  # ack parts run before the response; work is lazy
        request_verification_enabled=settings.mode == "http",
        listener_executor=ThreadPoolExecutor(max_workers=LISTENER_THREADS, thread_name_prefix="listener"),
    )

    @app.middleware
    def attach_services(context: BoltContext, next: Callable[[], Any]) -> Any:  # noqa: A002 - Bolt's name
        context[CONTEXT_KEY] = services
        return next()

    register_listeners(app)
    return app


def wsgi_app(app: App) -> SlackRequestHandler:
    """The WSGI callable gunicorn serves (tests serve the same one)."""
    return SlackRequestHandler(app, path=EVENTS_PATH)


def start(settings: BotSettings) -> App:
    """The bot of this process: its services built and its result consumer running.

    Both modes call it once per serving process; in HTTP mode that is each gunicorn worker,
    after the fork, because the consumer is a thread and threads do not survive a fork.
    """
    queue = JobQueue.from_url(settings.redis_url, namespace=settings.namespace)
    services = Services.create(settings, queue)
    Delivery(queue, services.client, settings).start()
    return build_app(settings, services)


def _serve_http(settings: BotSettings) -> None:
    from gunicorn.app.base import BaseApplication

    class Server(BaseApplication):
        """Gunicorn, configured in code (workers: WEB_CONCURRENCY, default 1); `load` runs in
        each worker after the fork."""

        def load_config(self) -> None:
            self.cfg.set("bind", f"0.0.0.0:{settings.port}")
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("threads", 8)
            self.cfg.set("timeout", 30)

        def load(self) -> SlackRequestHandler:
            return wsgi_app(start(settings))

    Server().run()


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = read_or_exit("qa-bot", BotSettings.from_env)
    try:
        web_client(settings).auth_test()
    except SlackApiError as exc:
        print(f"qa-bot: Slack rejected SLACK_BOT_TOKEN ({exc.response.get('error')}); copy the Bot User OAuth "
              "Token (xoxb-...) from OAuth & Permissions", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"qa-bot: cannot reach Slack at {settings.api_url}: {exc}", file=sys.stderr)
        return 1
    if settings.mode == "http":
        log.info("starting in HTTP mode on port %d (path %s)", settings.port, EVENTS_PATH)
        _serve_http(settings)
        return 0
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    log.info("starting in Socket Mode")
    try:
        SocketModeHandler(start(settings), settings.app_token).start()
    except SlackApiError as exc:
        print(f"qa-bot: Slack refused the Socket Mode connection ({exc.response.get('error')}); check "
              "SLACK_APP_TOKEN (an xapp-... App-Level Token with connections:write)", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
