"""Run a listener's work so that the user always hears back and never sees a stack trace."""
from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from bot.ui import blocks
from bot.workspaces import Workspace, acting_for
from explain_core.errors import Refusal

log = logging.getLogger(__name__)

SORRY = "Something went wrong on my side and I couldn't take your question. Please try again."


def acknowledge(ack: Callable[..., None]) -> None:
    """The whole synchronous part of event listeners: Slack gets its 200 at once and the
    work runs as a lazy listener, so no Redis or Slack call ever delays the ack."""
    ack()


def in_workspace(lazy: Callable[..., None]) -> Callable[..., None]:
    """`lazy` run in its request's workspace, so each Slack call it makes carries that
    workspace's token (bot.workspaces). Set here, around the work, because Bolt runs lazy
    listeners on its own threads after the request's middleware has returned. Bolt reads the
    arguments `lazy` wants through the wrapper (`inspect.unwrap`); each wants `context`."""

    @functools.wraps(lazy)
    def run(**kwargs: Any) -> None:
        with acting_for(Workspace.of_context(kwargs["context"])):
            lazy(**kwargs)

    return run


def guarded(work: Callable[[], None], tell: Callable[[blocks.Message], object]) -> None:
    """`work()`, turning a Refusal (bad input, a full queue, Redis down) into its message and
    anything else into an apology (logged)."""
    try:
        work()
    except Refusal as exc:
        tell(blocks.error(exc.message))
    except Exception:
        log.exception("a listener failed")
        tell(blocks.error(SORRY))
