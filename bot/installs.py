"""Where installations and OAuth states live: slack_sdk's SQLAlchemy stores, tokens encrypted.

slack_sdk's own stores, not hand-written ones, so the tables, the lookups of an Enterprise
Grid org-wide install and the one-use, expiring states are Slack's. One database URL
(`DATABASE_URL`) serves a single machine (SQLite, the default, a file under data/) or several
bot processes and hosts (PostgreSQL). The only thing added is encryption at rest: every
token column goes through `Encrypted` (Fernet, key QA_TOKEN_KEY), so a copy of the database
or a backup gives away no token. Token columns are widened to TEXT, because a Fernet token
of a rotating Slack token is longer than the 200 characters slack_sdk gives them.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy
from cryptography.fernet import Fernet, InvalidToken
from slack_bolt.oauth.oauth_settings import OAuthSettings
from slack_sdk.oauth.installation_store import InstallationStore
from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
from slack_sdk.oauth.sqlalchemy_utils import normalize_datetime_for_db
from slack_sdk.oauth.state_store import OAuthStateStore
from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore
from sqlalchemy.engine import Dialect
from sqlalchemy.types import Text, TypeDecorator

from bot.metrics import BotMetrics
from bot.settings import OAuthConfig
from bot.ui.install_pages import callbacks
from explain_core.errors import ConfigError

log = logging.getLogger(__name__)

TOKEN_COLUMNS = ("bot_token", "bot_refresh_token", "user_token", "user_refresh_token")


class Encrypted(TypeDecorator[str]):
    """A text column stored as a Fernet token: encrypted on the way in, decrypted on the way out."""

    impl = Text
    cache_ok = False  # holds a key: never part of a cached statement's identity

    def __init__(self, fernet: Fernet) -> None:
        super().__init__()
        self._fernet = fernet

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else self._fernet.encrypt(value.encode()).decode("ascii")

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else self._fernet.decrypt(value.encode("ascii")).decode()


class EncryptedInstallationStore(SQLAlchemyInstallationStore):
    """slack_sdk's SQLAlchemy installation store whose token columns are `Encrypted`."""

    def __init__(self, client_id: str, engine: sqlalchemy.engine.Engine, fernet: Fernet) -> None:
        super().__init__(client_id=client_id, engine=engine, logger=log)
        self._encrypted = Encrypted(fernet)
        for table in (self.installations, self.bots):
            for name in TOKEN_COLUMNS:
                if name in table.c:
                    table.c[name].type = self._encrypted

    def check_key(self) -> None:
        """Raise ConfigError if the stored tokens were encrypted with another key: one clear line
        at start-up rather than every workspace failing later."""
        with self.engine.connect() as conn:
            row = conn.execute(sqlalchemy.select(sqlalchemy.cast(self.bots.c.bot_token, Text))
                               .where(self.bots.c.bot_token.is_not(None)).limit(1)).first()
        if row is None:
            return
        try:
            self._encrypted.process_result_value(row[0], self.engine.dialect)
        except InvalidToken:
            raise ConfigError("QA_TOKEN_KEY does not decrypt the installations in DATABASE_URL: it is not the key "
                              "they were saved with") from None


class PrunedStateStore(SQLAlchemyOAuthStateStore):
    """slack_sdk's SQLAlchemy state store that deletes expired states as it issues new ones:
    its own keeps every state never consumed, so each visit of the install page would leave a row."""

    def issue(self, *args: Any, **kwargs: Any) -> str:
        with self.engine.begin() as conn:
            conn.execute(self.oauth_states.delete().where(
                self.oauth_states.c.expire_at < normalize_datetime_for_db(datetime.now(tz=UTC))))
        return super().issue(*args, **kwargs)


@dataclass(frozen=True)
class Stores:
    installations: EncryptedInstallationStore
    states: PrunedStateStore

    def close(self) -> None:
        self.installations.engine.dispose()


def open_stores(config: OAuthConfig) -> Stores:
    """The stores of `config`, their tables created if missing; ConfigError for a bad key or URL."""
    try:
        fernet = Fernet(config.token_key.encode())
    except ValueError:
        raise ConfigError("QA_TOKEN_KEY is not a Fernet key (32 url-safe base64-encoded bytes, as "
                          "Fernet.generate_key() makes)") from None
    url = sqlalchemy.engine.make_url(config.database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    # pre-ping: a database restarted under a long-lived bot; hidden parameters: no error or log shows a row
    engine = sqlalchemy.create_engine(url, pool_pre_ping=True, hide_parameters=True)
    installations = EncryptedInstallationStore(config.client_id, engine, fernet)
    states = PrunedStateStore(expiration_seconds=config.state_expiration_s, engine=engine, logger=log)
    try:
        installations.create_tables()
        states.create_tables()
    except sqlalchemy.exc.SQLAlchemyError as exc:
        engine.dispose()
        cause = getattr(exc, "orig", None) or exc
        raise ConfigError(f"cannot open DATABASE_URL ({type(exc).__name__}: {cause})") from None
    installations.check_key()
    return Stores(installations, states)


def oauth_settings(config: OAuthConfig, installations: InstallationStore, states: OAuthStateStore,
                   metrics: BotMetrics) -> OAuthSettings:
    """Bolt's OAuth flow for `config`: its paths, the manifest's scopes, one-use states that
    expire after `state_expiration_s` (and are bound to the installer's browser by a cookie),
    and pages that say what happened (`bot.ui.install_pages`), each install counted in `metrics`."""
    return OAuthSettings(client_id=config.client_id, client_secret=config.client_secret, scopes=list(config.scopes),
                         redirect_uri=config.redirect_uri, install_path=config.install_path,
                         redirect_uri_path=config.redirect_uri_path, callback_options=callbacks(metrics),
                         installation_store=installations, state_store=states,
                         state_expiration_seconds=config.state_expiration_s,
                         token_rotation_expiration_minutes=config.token_rotation_minutes, logger=log)
