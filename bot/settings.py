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
from explain_core.queue import Keys, RedisTarget
from explain_core.settings import Env

MODES = ("socket", "http")
SLACK_FILE_HOST = "files.slack.com"
SETUP_SECTION = 'README.md, "Set up the Slack app"'  # where a person finds each token (tests/test_readme.py)


@dataclass(frozen=True)
class BotSettings:
    """What the bot needs to run; `from_env()` documents each variable.

    `mode` is one of `MODES`. `repr` hides the secrets so a settings object can be logged safely.
    """

    bot_token: str | None = None
    mode: str = defaults.BOT_MODE
    app_token: str | None = None
    signing_secret: str | None = None
    api_url: str = defaults.SLACK_API_URL
    port: int = defaults.PORT
    redis: RedisTarget = RedisTarget()
    namespace: str = defaults.NAMESPACE
    max_file_bytes: int = defaults.MAX_FILE_BYTES
    max_pdf_pages: int = defaults.MAX_PDF_PAGES
    pdf_cpu_s: int = defaults.PDF_CPU_S
    pdf_memory_mb: int = defaults.PDF_MEMORY_MB
    pdf_timeout_s: float = defaults.PDF_TIMEOUT_S
    pdf_readers: int = defaults.PDF_READERS
    download_timeout_s: float = defaults.DOWNLOAD_TIMEOUT_S
    doc_cache_ttl_s: int = defaults.DOC_CACHE_TTL_S
    max_per_user: int = defaults.MAX_PER_USER
    max_per_channel: int = defaults.MAX_PER_CHANNEL
    max_per_team: int = defaults.MAX_PER_TEAM
    team_slots: int = defaults.TEAM_SLOTS  # only with many workspaces (`oauth`)
    reply_deadline_s: float = defaults.REPLY_DEADLINE_S
    slack_retry_s: float = defaults.SLACK_RETRY_S
    delivery_threads: int = defaults.DELIVERY_THREADS
    sweep_interval_s: float = defaults.SWEEP_INTERVAL_S
    progress_after_s: float = defaults.PROGRESS_AFTER_S
    lost_grace_s: float = defaults.LOST_GRACE_S
    bind_host: str = defaults.BIND_HOST
    web_concurrency: int = defaults.WEB_CONCURRENCY
    http_max_body_bytes: int = defaults.HTTP_MAX_BODY_BYTES
    http_timeout_s: float = defaults.HTTP_TIMEOUT_S
    http_buffer_bytes: int = defaults.HTTP_BUFFER_BYTES
    metrics_port: int = defaults.BOT_METRICS_PORT
    metrics_host: str = defaults.METRICS_HOST
    oauth: OAuthConfig | None = None

    def __repr__(self) -> str:
        return (f"BotSettings(mode={self.mode!r}, api_url={self.api_url!r}, port={self.port}, "
                f"namespace={self.namespace!r}, redis={self.redis!r}, tokens=<hidden>)")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> BotSettings:
        """Read the environment (see .env.example); raise ConfigError naming what is missing.

        SLACK_BOT_TOKEN for one workspace, or else SLACK_CLIENT_ID and SLACK_CLIENT_SECRET for
        many (HTTP mode only; see `OAuthConfig.from_env`); SLACK_APP_TOKEN in Socket Mode
        (BOT_MODE=socket, the default);
        SLACK_SIGNING_SECRET in HTTP mode (BOT_MODE=http). Optional: SLACK_API_URL, PORT,
        REDIS_URL (or REDIS_SENTINELS, REDIS_SENTINEL_MASTER, REDIS_SENTINEL_PASSWORD: see
        `explain_core.queue.connect`), QA_NAMESPACE, QA_MAX_FILE_BYTES, QA_MAX_PDF_PAGES, QA_PDF_CPU_S,
        QA_PDF_MEMORY_MB, QA_PDF_TIMEOUT_S, QA_PDF_READERS, QA_DOWNLOAD_TIMEOUT_S,
        QA_DOC_CACHE_TTL_S, QA_MAX_PER_USER, QA_MAX_PER_CHANNEL, QA_MAX_PER_TEAM, QA_TEAM_SLOTS (many
        workspaces only), QA_REPLY_DEADLINE_S, QA_SLACK_RETRY_S, QA_DELIVERY_THREADS, QA_PROGRESS_AFTER_S,
        QA_BOT_METRICS_PORT (0: no /metrics, /healthz, /readyz), QA_METRICS_HOST; HTTP mode
        only: BIND_HOST, WEB_CONCURRENCY,
        QA_HTTP_MAX_BODY_BYTES, QA_HTTP_TIMEOUT_S, QA_HTTP_BUFFER_BYTES (see `bot.http`);
        defaults in `explain_core.defaults`.
        """
        env = Env(environ)
        mode = env.choice("BOT_MODE", defaults.BOT_MODE, MODES)
        bot_token = env.optional("SLACK_BOT_TOKEN")
        oauth = None if bot_token else OAuthConfig.from_env(env)
        if not bot_token and oauth is None:
            raise ConfigError("SLACK_BOT_TOKEN is not set (the xoxb-... token from OAuth & Permissions)")
        if oauth is not None and mode != "http":
            raise ConfigError("SLACK_CLIENT_ID and SLACK_CLIENT_SECRET serve many workspaces, which needs "
                              "BOT_MODE=http (Socket Mode serves one workspace: set SLACK_BOT_TOKEN for it)")
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
            redis=RedisTarget.from_env(env),
            namespace=settings.namespace(env),
            max_file_bytes=env.integer("QA_MAX_FILE_BYTES", defaults.MAX_FILE_BYTES, low=1),
            max_pdf_pages=env.integer("QA_MAX_PDF_PAGES", defaults.MAX_PDF_PAGES, low=1),
            pdf_cpu_s=env.integer("QA_PDF_CPU_S", defaults.PDF_CPU_S, low=1),
            pdf_memory_mb=env.integer("QA_PDF_MEMORY_MB", defaults.PDF_MEMORY_MB, low=128),
            pdf_timeout_s=env.number("QA_PDF_TIMEOUT_S", defaults.PDF_TIMEOUT_S, low=1.0),
            pdf_readers=env.integer("QA_PDF_READERS", defaults.PDF_READERS, low=1),
            download_timeout_s=env.number("QA_DOWNLOAD_TIMEOUT_S", defaults.DOWNLOAD_TIMEOUT_S, low=0.1),
            doc_cache_ttl_s=env.integer("QA_DOC_CACHE_TTL_S", defaults.DOC_CACHE_TTL_S, low=1),
            max_per_user=env.integer("QA_MAX_PER_USER", defaults.MAX_PER_USER, low=1),
            max_per_channel=env.integer("QA_MAX_PER_CHANNEL", defaults.MAX_PER_CHANNEL, low=1),
            max_per_team=env.integer("QA_MAX_PER_TEAM", defaults.MAX_PER_TEAM, low=1),
            team_slots=env.integer("QA_TEAM_SLOTS", defaults.TEAM_SLOTS, low=1),
            reply_deadline_s=_reply_deadline(env),
            slack_retry_s=env.number("QA_SLACK_RETRY_S", defaults.SLACK_RETRY_S, low=0.0),
            delivery_threads=env.integer("QA_DELIVERY_THREADS", defaults.DELIVERY_THREADS, low=1),
            progress_after_s=env.number("QA_PROGRESS_AFTER_S", defaults.PROGRESS_AFTER_S, low=0.0),
            bind_host=env.text("BIND_HOST", defaults.BIND_HOST),
            web_concurrency=env.integer("WEB_CONCURRENCY", defaults.WEB_CONCURRENCY, low=1),
            http_max_body_bytes=env.integer("QA_HTTP_MAX_BODY_BYTES", defaults.HTTP_MAX_BODY_BYTES, low=1),
            http_timeout_s=env.number("QA_HTTP_TIMEOUT_S", defaults.HTTP_TIMEOUT_S, low=0.1),
            http_buffer_bytes=env.integer("QA_HTTP_BUFFER_BYTES", defaults.HTTP_BUFFER_BYTES, low=1),
            metrics_port=env.integer("QA_BOT_METRICS_PORT", defaults.BOT_METRICS_PORT, low=0),
            metrics_host=env.text("QA_METRICS_HOST", defaults.METRICS_HOST),
            oauth=oauth,
        )

    @property
    def file_origins(self) -> frozenset[tuple[str, str]]:
        """(scheme, host[:port]) pairs the bot sends its token to for downloads.

        Slack's file host over HTTPS, plus the API's own origin so that a test fake or a
        proxy that moves SLACK_API_URL also serves files. Nothing else ever sees the token.
        """
        api = urlparse(self.api_url)
        return frozenset({("https", SLACK_FILE_HOST), (api.scheme, api.netloc)})


@dataclass(frozen=True)
class OAuthConfig:
    """Many workspaces: Slack's OAuth install (Bolt's `OAuthSettings`) and where installations live.

    Read from Bolt's own variables (SLACK_CLIENT_ID, SLACK_CLIENT_SECRET, SLACK_SCOPES,
    SLACK_REDIRECT_URI, SLACK_INSTALL_PATH, SLACK_REDIRECT_URI_PATH) so Slack's documentation
    applies as written, plus DATABASE_URL (an SQLAlchemy URL; unset, a SQLite file under data/),
    QA_TOKEN_KEY (the Fernet key that encrypts tokens at rest), QA_OAUTH_STATE_S,
    QA_TOKEN_CACHE_S and QA_TOKEN_ROTATION_MINUTES. `repr` hides the secrets.
    """

    client_id: str
    client_secret: str
    token_key: str
    scopes: tuple[str, ...]
    database_url: str
    redirect_uri: str | None = None
    install_path: str = "/slack/install"
    redirect_uri_path: str = "/slack/oauth_redirect"
    state_expiration_s: int = defaults.OAUTH_STATE_S
    token_cache_s: float = defaults.TOKEN_CACHE_S
    token_rotation_minutes: int = defaults.TOKEN_ROTATION_MINUTES

    def __repr__(self) -> str:
        return f"OAuthConfig(client_id={self.client_id!r}, scopes={self.scopes!r}, secrets=<hidden>)"

    @classmethod
    def from_env(cls, env: Env) -> OAuthConfig | None:
        """None unless both SLACK_CLIENT_ID and SLACK_CLIENT_SECRET are set."""
        client_id, client_secret = env.optional("SLACK_CLIENT_ID"), env.optional("SLACK_CLIENT_SECRET")
        if not (client_id and client_secret):
            return None
        token_key = env.optional("QA_TOKEN_KEY")
        if not token_key:
            raise ConfigError("QA_TOKEN_KEY is not set: installations' tokens are encrypted at rest with it; make one "
                              "with `python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key()"
                              ".decode())'` and keep it with your other secrets")
        scopes = env.names("SLACK_SCOPES") or MANIFEST_SCOPES
        return cls(client_id=client_id, client_secret=client_secret, token_key=token_key, scopes=scopes,
                   database_url=env.optional("DATABASE_URL") or f"sqlite:///{defaults.DATABASE_FILE}",
                   redirect_uri=env.optional("SLACK_REDIRECT_URI"),
                   install_path=_path(env, "SLACK_INSTALL_PATH", "/slack/install"),
                   redirect_uri_path=_path(env, "SLACK_REDIRECT_URI_PATH", "/slack/oauth_redirect"),
                   state_expiration_s=env.integer("QA_OAUTH_STATE_S", defaults.OAUTH_STATE_S, low=1),
                   token_cache_s=env.number("QA_TOKEN_CACHE_S", defaults.TOKEN_CACHE_S, low=0.0),
                   token_rotation_minutes=env.integer("QA_TOKEN_ROTATION_MINUTES", defaults.TOKEN_ROTATION_MINUTES,
                                                      low=1))


# The bot scopes of manifest.json (tests/bot/test_workspaces.py keeps the two equal).
MANIFEST_SCOPES = ("app_mentions:read", "channels:history", "groups:history", "im:history", "mpim:history",
                   "chat:write", "chat:write.public", "channels:join", "commands", "files:read", "files:write")


def _path(env: Env, name: str, default: str) -> str:
    path = env.text(name, default)
    if not path.startswith("/") or path == "/slack/events":
        raise ConfigError(f"{name} must be a path of its own starting with /, got {path!r}")
    return path


def _reply_deadline(env: Env) -> float:
    """QA_REPLY_DEADLINE_S, below the hour for which the queue keeps a job's trace (its dedup
    key, the asker's place in line): past that the sweeper would call a waiting job lost."""
    deadline = env.number("QA_REPLY_DEADLINE_S", defaults.REPLY_DEADLINE_S, low=1.0)
    longest = min(Keys.DEDUP_TTL_S, Keys.LINE_TTL_S) / 2
    if deadline > longest:
        raise ConfigError(f"QA_REPLY_DEADLINE_S={deadline:g} is too long: at most {longest:g} seconds, because the "
                          f"queue keeps a job's trace for {min(Keys.DEDUP_TTL_S, Keys.LINE_TTL_S)} seconds")
    return deadline
