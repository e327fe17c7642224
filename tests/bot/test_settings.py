"""The bot's settings: defaults shared with the worker, and bad values named at start-up."""
from __future__ import annotations

import pytest

from bot.settings import BotSettings
from explain_core import defaults
from explain_core.errors import ConfigError

TOKENS = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1"}


def test_unset_variables_take_the_shared_defaults() -> None:
    settings = BotSettings.from_env({**TOKENS, "QA_MAX_PDF_PAGES": ""})
    assert (settings.mode, settings.api_url, settings.redis.url, settings.namespace) == (
        defaults.BOT_MODE, defaults.SLACK_API_URL, defaults.REDIS_URL, defaults.NAMESPACE)
    assert (settings.max_file_bytes, settings.max_pdf_pages, settings.reply_deadline_s) == (
        defaults.MAX_FILE_BYTES, defaults.MAX_PDF_PAGES, defaults.REPLY_DEADLINE_S)
    assert (settings.max_per_user, settings.max_per_channel) == (defaults.MAX_PER_USER, defaults.MAX_PER_CHANNEL)
    assert (settings.metrics_port, settings.metrics_host) == (9101, "127.0.0.1")  # on, and only on loopback


@pytest.mark.parametrize("name, value", [("QA_MAX_PDF_PAGES", "many"), ("QA_DOWNLOAD_TIMEOUT_S", "-1"),
                                         ("BOT_MODE", "lambda"), ("QA_REPLY_DEADLINE_S", "7200"),
                                         ("QA_BOT_METRICS_PORT", "-1")])
def test_a_bad_value_names_its_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        BotSettings.from_env({**TOKENS, name: value})
