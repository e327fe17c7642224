from slack_bolt import App

from bot.listeners.guard import in_workspace

from .ask_about_message import CALLBACK_ID, ack_shortcut, open_form


def register(app: App) -> None:
    app.shortcut(CALLBACK_ID)(ack=ack_shortcut, lazy=[in_workspace(open_form)])
