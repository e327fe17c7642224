from slack_bolt import App

from bot.listeners.guard import acknowledge

from .app_home_opened import run_home
from .app_mention import run_mention
from .direct_message import run_direct_message


def register(app: App) -> None:
    app.event("app_mention")(ack=acknowledge, lazy=[run_mention])
    app.event("app_home_opened")(ack=acknowledge, lazy=[run_home])
    app.event("message")(ack=acknowledge, lazy=[run_direct_message])
