from slack_bolt import App

from bot.listeners.guard import in_workspace

from .explain import ack_explain, run_explain


def register(app: App) -> None:
    app.command("/explain")(ack=ack_explain, lazy=[in_workspace(run_explain)])
