"""The bot's configuration, read once from the environment.

Everything the bot can be told lives here so a missing credential fails at start-up with
one clear line instead of deep inside a listener. Built on `explain_core.settings.Env`, so
every variable is parsed the way the worker parses its own and has its default in
`explain_core.defaults`. Limits on passages come from `explain_core.settings` too, so the
bot rejects exactly what the worker would.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlparse

from explain_core import defaults, settings
from explain_core.errors import ConfigError
from explain_core.settings import Env

MODES = ("socket", "http")
SLACK_FILE_HOST = "files.slack.com"


@dataclass(frozen=True)
class BotSettings:
    """What the bot needs to run; `from_env()` documents each variable.

    `mode` is one of `MODES`. `repr` hides the secrets so a settings object can be logged safely.
    """

    bot_token: str
    mode: str = defaults.BOT_MODE
    app_token: str | None = None
    signing_secret: str | None = None
    api_url: str = defaults.SLACK_API_URL
    port: int = defaults.PORT
    redis_url: str = defaults.REDIS_URL
    namespace: str = defaults.NAMESPACE
    max_file_bytes: int = defaults.MAX_FILE_BYTES
    max_pdf_pages: int = defaults.MAX_PDF_PAGES
    download_timeout_s: float = defaults.DOWNLOAD_TIMEOUT_S
    doc_cache_ttl_s: int = defaults.DOC_CACHE_TTL_S
    placeholder_wait_s: float = defaults.PLACEHOLDER_WAIT_S

    def __repr__(self) -> str:
        return (f"BotSettings(mode={self.mode!r}, api_url={self.api_url!r}, port={self.port}, "
                f"namespace={self.namespace!r}, redis_url=<hidden>, tokens=<hidden>)")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> BotSettings:
        """Read the environment (see .env.example); raise ConfigError naming what is missing.

        SLACK_BOT_TOKEN always; SLACK_APP_TOKEN in Socket Mode (BOT_MODE=socket, the default);
        SLACK_SIGNING_SECRET in HTTP mode (BOT_MODE=http). Optional: SLACK_API_URL, PORT,
        REDIS_URL, QA_NAMESPACE, QA_MAX_FILE_BYTES, QA_MAX_PDF_PAGES, QA_DOWNLOAD_TIMEOUT_S,
        QA_DOC_CACHE_TTL_S, QA_PLACEHOLDER_WAIT_S; defaults in `explain_core.defaults`.
        """
        env = Env(environ)
        mode = env.choice("BOT_MODE", defaults.BOT_MODE, MODES)
        bot_token = env.optional("SLACK_BOT_TOKEN")
        if not bot_token:
            raise ConfigError("SLACK_BOT_TOKEN is not set (the xoxb-... token from OAuth & Permissions)")
        app_token = env.optional("SLACK_APP_TOKEN")
        signing_secret = env.optional("SLACK_SIGNING_SECRET")
        if mode == "socket" and not app_token:
            raise ConfigError("SLACK_APP_TOKEN is not set: Socket Mode needs the xapp-... app-level token "
                              "(or set BOT_MODE=http and SLACK_SIGNING_SECRET)")
        if mode == "http" and not signing_secret:
            raise ConfigError("SLACK_SIGNING_SECRET is not set: HTTP mode checks every request's signature "
                              "(Basic Information > App Credentials > Signing Secret)")
        api_url = env.text("SLACK_API_URL", defaults.SLACK_API_URL)
        if not api_url.endswith("/"):
            api_url += "/"
        if urlparse(api_url).scheme not in ("http", "https"):
            raise ConfigError(f"SLACK_API_URL must be an http(s) URL, got {api_url!r}")
        return cls(
            bot_token=bot_token,
            mode=mode,
            app_token=app_token,
            signing_secret=signing_secret,
            api_url=api_url,
            port=env.integer("PORT", defaults.PORT, low=1),
            redis_url=settings.redis_url(env),
            namespace=settings.namespace(env),
            max_file_bytes=env.integer("QA_MAX_FILE_BYTES", defaults.MAX_FILE_BYTES, low=1),
            max_pdf_pages=env.integer("QA_MAX_PDF_PAGES", defaults.MAX_PDF_PAGES, low=1),
            download_timeout_s=env.number("QA_DOWNLOAD_TIMEOUT_S", defaults.DOWNLOAD_TIMEOUT_S, low=0.1),
            doc_cache_ttl_s=env.integer("QA_DOC_CACHE_TTL_S", defaults.DOC_CACHE_TTL_S, low=1),
            placeholder_wait_s=env.number("QA_PLACEHOLDER_WAIT_S", defaults.PLACEHOLDER_WAIT_S, low=0.0),
        )

    @property
    def file_origins(self) -> frozenset[tuple[str, str]]:
        """(scheme, host[:port]) pairs the bot sends its token to for downloads.

        Slack's file host over HTTPS, plus the API's own origin so that a test fake or a
        proxy that moves SLACK_API_URL also serves files. Nothing else ever sees the token.
        """
        api = urlparse(self.api_url)
        return frozenset({("https", SLACK_FILE_HOST), (api.scheme, api.netloc)})
