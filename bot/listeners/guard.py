"""Run a listener's work so that the user always hears back and never sees a stack trace."""
from __future__ import annotations

import logging
from collections.abc import Callable

from bot.ui import blocks
from explain_core.errors import Refusal

log = logging.getLogger(__name__)

SORRY = "Something went wrong on my side and I couldn't take your question. Please try again."


def acknowledge(ack: Callable[..., None]) -> None:
    """The whole synchronous part of event listeners: Slack gets its 200 at once and the
    work runs as a lazy listener, so no Redis or Slack call ever delays the ack."""
    ack()


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
