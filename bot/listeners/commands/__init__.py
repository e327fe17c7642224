from slack_bolt import App

from .explain import ack_explain, run_explain


def register(app: App) -> None:
    app.command("/explain")(ack=ack_explain, lazy=[run_explain])
