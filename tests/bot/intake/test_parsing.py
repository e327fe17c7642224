"""What a person typed, read back from Slack's markup."""
from __future__ import annotations

import pytest

from bot.intake.parsing import slack_to_plain, without_mention


@pytest.mark.parametrize("slack_text, plain", [
    ("Ask <@U123> or <@U456|maria> in <#C1|general>", "Ask @U123 or @maria in #general"),
    ("<!here> <!channel> <!everyone> <!subteam^S9|@editors>", "@here @channel @everyone @editors"),
    ("See <https://example.com/a?b=1&amp;c=2|the docs> or <https://x.org>", "See the docs or https://x.org"),
    ("mail <mailto:a@b.org|a@b.org> on <!date^1392734382^{date}|Feb 18th>", "mail a@b.org on Feb 18th"),
    ("1 &lt; 2 &amp;&amp; 3 &gt; 2", "1 < 2 && 3 > 2"),
    ("a | b", "a | b"),
])
def test_slack_markup_becomes_what_the_reader_saw(slack_text: str, plain: str) -> None:
    assert slack_to_plain(slack_text) == plain


def test_only_the_bots_own_mention_is_removed() -> None:
    assert without_mention("<@UBOT> who is <@U2>?", "UBOT") == "who is <@U2>?"
    assert without_mention("<@UBOT|explain> hi", "UBOT") == "hi"
