"""The bot's configuration, read once from the environment.

Everything the bot can be told lives here so a missing credential fails at start-up with
one clear line instead of deep inside a listener. Limits on passages come from
`explain_core.settings` so the bot rejects exactly what the worker would.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlparse

DEFAULT_API_URL = "https://slack.com/api/"
SLACK_FILE_HOST = "files.slack.com"


class ConfigError(RuntimeError):
    """A setting is missing or malformed; the message says which and how to fix it."""


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name)
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {value!r}") from None


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    value = env.get(name)
    if not value:
        return default
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {value!r}") from None


@dataclass(frozen=True)
class BotSettings:
    """What the bot needs to run; `from_env()` documents each variable.

    `repr` hides the secrets so a settings object can be logged safely.
    """

    bot_token: str
    mode: Literal["socket", "http"] = "socket"
    app_token: str | None = None
    signing_secret: str | None = None
    api_url: str = DEFAULT_API_URL
    port: int = 3000
    redis_url: str = "redis://localhost:6379/0"
    namespace: str = "qa"
    max_file_bytes: int = 10 * 1024 * 1024
    max_pdf_pages: int = 50
    download_timeout_s: float = 10.0
    doc_cache_ttl_s: int = 24 * 3600
    placeholder_wait_s: float = 10.0

    def __repr__(self) -> str:
        return (f"BotSettings(mode={self.mode!r}, api_url={self.api_url!r}, port={self.port}, "
                f"namespace={self.namespace!r}, redis_url=<hidden>, tokens=<hidden>)")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "BotSettings":
        """Read the environment (see .env.example); raise ConfigError naming what is missing.

        SLACK_BOT_TOKEN always; SLACK_APP_TOKEN in Socket Mode (BOT_MODE=socket, the default);
        SLACK_SIGNING_SECRET in HTTP mode (BOT_MODE=http). Optional: SLACK_API_URL, PORT,
        REDIS_URL, QA_NAMESPACE, QA_MAX_FILE_BYTES, QA_MAX_PDF_PAGES, QA_DOWNLOAD_TIMEOUT_S,
        QA_DOC_CACHE_TTL_S, QA_PLACEHOLDER_WAIT_S.
        """
        env = os.environ if env is None else env
        mode = (env.get("BOT_MODE") or "socket").strip().lower()
        if mode not in ("socket", "http"):
            raise ConfigError(f"BOT_MODE must be 'socket' or 'http', got {mode!r}")
        bot_token = env.get("SLACK_BOT_TOKEN", "").strip()
        if not bot_token:
            raise ConfigError("SLACK_BOT_TOKEN is not set (the xoxb-... token from OAuth & Permissions)")
        app_token = env.get("SLACK_APP_TOKEN", "").strip() or None
        signing_secret = env.get("SLACK_SIGNING_SECRET", "").strip() or None
        if mode == "socket" and not app_token:
            raise ConfigError("SLACK_APP_TOKEN is not set: Socket Mode needs the xapp-... app-level token "
                              "(or set BOT_MODE=http and SLACK_SIGNING_SECRET)")
        if mode == "http" and not signing_secret:
            raise ConfigError("SLACK_SIGNING_SECRET is not set: HTTP mode checks every request's signature "
                              "(Basic Information > App Credentials > Signing Secret)")
        api_url = env.get("SLACK_API_URL") or DEFAULT_API_URL
        if not api_url.endswith("/"):
            api_url += "/"
        if urlparse(api_url).scheme not in ("http", "https"):
            raise ConfigError(f"SLACK_API_URL must be an http(s) URL, got {api_url!r}")
        return cls(
            bot_token=bot_token,
            mode=mode,  # type: ignore[arg-type]  # checked above
            app_token=app_token,
            signing_secret=signing_secret,
            api_url=api_url,
            port=_int(env, "PORT", 3000),
            redis_url=env.get("REDIS_URL") or "redis://localhost:6379/0",
            namespace=env.get("QA_NAMESPACE") or "qa",
            max_file_bytes=_int(env, "QA_MAX_FILE_BYTES", cls.max_file_bytes),
            max_pdf_pages=_int(env, "QA_MAX_PDF_PAGES", cls.max_pdf_pages),
            download_timeout_s=_float(env, "QA_DOWNLOAD_TIMEOUT_S", cls.download_timeout_s),
            doc_cache_ttl_s=_int(env, "QA_DOC_CACHE_TTL_S", cls.doc_cache_ttl_s),
            placeholder_wait_s=_float(env, "QA_PLACEHOLDER_WAIT_S", cls.placeholder_wait_s),
        )

    @property
    def file_origins(self) -> frozenset[tuple[str, str]]:
        """(scheme, host[:port]) pairs the bot sends its token to for downloads.

        Slack's file host over HTTPS, plus the API's own origin so that a test fake or a
        proxy that moves SLACK_API_URL also serves files. Nothing else ever sees the token.
        """
        api = urlparse(self.api_url)
        return frozenset({("https", SLACK_FILE_HOST), (api.scheme, api.netloc)})
