from slack_bolt import App

from .ask_about_message import CALLBACK_ID, ack_shortcut, open_form


def register(app: App) -> None:
    app.shortcut(CALLBACK_ID)(ack=ack_shortcut, lazy=[open_form])
