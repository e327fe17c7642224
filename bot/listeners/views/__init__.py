from slack_bolt import App

from bot.listeners.guard import in_workspace
from bot.ui.blocks import MODAL_CALLBACK_ID

from .explain_modal import ack_submission, run_submission


def register(app: App) -> None:
    app.view(MODAL_CALLBACK_ID)(ack=ack_submission, lazy=[in_workspace(run_submission)])
