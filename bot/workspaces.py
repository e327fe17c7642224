"""Which workspace a Slack call is made for, and that workspace's bot token.

One deployment may serve many workspaces (Slack's OAuth install, `bot.installs`): every call
must carry the token of the workspace the question came from, and never another's. Rather
than hand a token down every path (the reply flow, the sweeper, the progress reader, the
readers of threads and files), each entry point says once whose work it does
(`acting_for`: a listener for its request's workspace, the delivery for the job's), and the
clients of `bot.services` (`SlackClient`) take their token from that scope at each call.
In many-workspace mode a call made outside any scope raises `NoWorkspace` rather than guess.

A workspace's token is looked up in the installation store once and cached briefly
(`Installations`); a token that Slack rotates (refresh tokens) is refreshed before it
expires, also for a question that waited in the queue longer than its token lived.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol

from slack_bolt import BoltContext
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackTokenRotationError
from slack_sdk.oauth.installation_store import Installation, InstallationStore
from slack_sdk.oauth.token_rotation import TokenRotator

from bot.settings import OAuthConfig
from explain_core.queue import ReplyTo

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Workspace:
    """What identifies an installation: the team, and for Enterprise Grid the org and whether
    the app was installed org-wide (then the org's installation serves every team in it)."""

    team_id: str | None
    enterprise_id: str | None = None
    is_enterprise_install: bool = False

    @classmethod
    def of(cls, reply_to: ReplyTo) -> Workspace:
        return cls(reply_to.team, reply_to.enterprise_id, reply_to.is_enterprise_install)

    @classmethod
    def of_context(cls, context: BoltContext) -> Workspace:
        return cls(context.team_id, context.enterprise_id, bool(context.is_enterprise_install))

    @property
    def installation(self) -> Workspace:
        """The key of its installation: an org-wide install is the org's, whatever the team."""
        return Workspace(None, self.enterprise_id, True) if self.is_enterprise_install else self


_scope: ContextVar[Workspace | None] = ContextVar("workspace", default=None)


@contextmanager
def acting_for(workspace: Workspace) -> Iterator[Workspace]:
    """Every Slack call of `SlackClient`s with a token source inside is made with `workspace`'s token."""
    token = _scope.set(workspace)
    try:
        yield workspace
    finally:
        _scope.reset(token)


def current() -> Workspace | None:
    """The workspace in scope, None outside `acting_for` (and always in one-workspace mode)."""
    return _scope.get()


class NoWorkspace(RuntimeError):
    """A Slack call in many-workspace mode outside `acting_for`: a bug, never a guessed token."""


class TokenSource(Protocol):
    def token(self) -> str | None: ...


class Installations:
    """The bot tokens of the installed workspaces (see the module doc); thread-safe."""

    def __init__(self, store: InstallationStore, config: OAuthConfig, client: WebClient) -> None:
        self.store = store
        self._cache_s = config.token_cache_s
        self._rotate_before_s = config.token_rotation_minutes * 60
        self._rotator = TokenRotator(client_id=config.client_id, client_secret=config.client_secret, client=client)
        self._lock = threading.Lock()
        self._cache: dict[Workspace, tuple[str | None, float]] = {}  # installed -> (token, until time.time())

    def token(self) -> str | None:
        workspace = current()
        if workspace is None:
            raise NoWorkspace("a Slack call outside any workspace's scope")
        return self.token_of(workspace)

    def installed(self, workspace: Workspace) -> bool:
        return self.token_of(workspace) is not None

    def token_of(self, workspace: Workspace) -> str | None:
        """`workspace`'s bot token, None if it has no installation (never installed, or uninstalled)."""
        key = workspace.installation
        with self._lock:
            token, until = self._cache.get(key, (None, 0.0))
            now = time.time()
            if until > now:
                return token
            installation = self._find(key)
            if installation is None:  # not cached: an install moments from now is seen at once
                return None
            until = now + self._cache_s
            if installation.bot_token_expires_at:
                until = min(until, installation.bot_token_expires_at - self._rotate_before_s)
            self._cache[key] = (installation.bot_token, until)
            return installation.bot_token

    def forget(self, workspace: Workspace) -> None:
        """Delete `workspace`'s installation (its tokens are revoked or the app uninstalled)."""
        key = workspace.installation
        with self._lock:
            self.store.delete_all(enterprise_id=key.enterprise_id, team_id=key.team_id)
            self._cache.pop(key, None)

    def _find(self, key: Workspace) -> Installation | None:
        installation = self.store.find_installation(enterprise_id=key.enterprise_id, team_id=key.team_id,
                                                    is_enterprise_install=key.is_enterprise_install)
        if installation is None or not installation.bot_refresh_token:
            return installation
        try:
            refreshed = self._rotator.perform_token_rotation(installation=installation,
                                                             minutes_before_expiration=self._rotate_before_s // 60)
        except (SlackTokenRotationError, SlackApiError, OSError) as exc:
            log.warning("could not refresh the bot token of %s: %s", key, type(exc).__name__)
            expires_at = installation.bot_token_expires_at
            return installation if expires_at and expires_at > time.time() else None
        if refreshed is None:
            return installation
        self.store.save(refreshed)
        log.info("refreshed the bot token of %s", key)
        return refreshed
