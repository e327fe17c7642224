from slack_bolt import App

from bot.listeners.guard import acknowledge, in_workspace

from .app_home_opened import run_home
from .app_mention import run_mention
from .direct_message import run_direct_message
from .uninstalled import run_uninstalled


def register(app: App) -> None:
    app.event("app_mention")(ack=acknowledge, lazy=[in_workspace(run_mention)])
    app.event("app_home_opened")(ack=acknowledge, lazy=[in_workspace(run_home)])
    app.event("message")(ack=acknowledge, lazy=[in_workspace(run_direct_message)])
    app.event("app_uninstalled")(ack=acknowledge, lazy=[run_uninstalled])
    app.event("tokens_revoked")(ack=acknowledge, lazy=[run_uninstalled])
