from slack_bolt import App

from bot.listeners.guard import acknowledge, in_workspace
from bot.ui import blocks

from .answer_buttons import run_another_way, run_compare, run_feedback, run_other_answers


def register(app: App) -> None:
    app.action(blocks.ACTION_FEEDBACK)(ack=acknowledge, lazy=[in_workspace(run_feedback)])
    app.action(blocks.ACTION_ANOTHER_WAY)(ack=acknowledge, lazy=[in_workspace(run_another_way)])
    app.action(blocks.ACTION_OTHER_ANSWERS)(ack=acknowledge, lazy=[in_workspace(run_other_answers)])
    app.action(blocks.ACTION_COMPARE)(ack=acknowledge, lazy=[in_workspace(run_compare)])
