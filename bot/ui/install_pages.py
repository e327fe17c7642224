"""The pages a person sees at the end of Slack's install flow: what happened, and what to do.

Bolt's default failure page says "Something went wrong" whatever went wrong; an installer who
pressed Cancel, or came back to an old link, should read which it was and where to start again.
Bolt calls these through `CallbackOptions`; nothing here logs or shows a token or a code. Each
install is counted (`qa_bot_installs_total{result}`): ok, or Bolt's reason for a failure; a reason
outside Bolt's known ones (Slack's `error` parameter, which anyone can put in the redirect URL) is
counted as "other", so a stranger's requests cannot grow the metric without bound.
"""
from __future__ import annotations

import html

from slack_bolt import BoltResponse
from slack_bolt.oauth.callback_options import CallbackOptions, FailureArgs, SuccessArgs

from bot.metrics import BotMetrics

# Bolt's failure reasons (slack_bolt.oauth.oauth_flow), and Slack's "error" for a cancelled install.
_FAILURES = {
    "access_denied": "The install was cancelled in Slack, so nothing was installed.",
    "invalid_browser": "This install link was started in another browser (or its cookie was blocked). "
                       "Start again in this browser.",
    "invalid_state": "This install link was already used, or it expired ({minutes} minutes after it was "
                     "opened). Start again.",
    "missing_code": "Slack came back without an authorization code, so nothing was installed. Start again.",
    "invalid_code": "Slack did not accept the authorization code (it is used once and expires in minutes). "
                    "Start again.",
    "storage_error": "The installation could not be saved on our side. Please try again in a few minutes.",
}


def _page(title: str, body: str, status: int) -> BoltResponse:
    text = (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title></head>"
            f"<body style=\"font-family: sans-serif; max-width: 40em; margin: 4em auto\">"
            f"<h1>{html.escape(title)}</h1>{body}</body></html>")
    return BoltResponse(status=status, body=text, headers={"Content-Type": "text/html; charset=utf-8"})


def success(args: SuccessArgs) -> BoltResponse:
    installation = args.installation
    where = installation.enterprise_name if installation.is_enterprise_install else installation.team_name
    team = installation.team_id or installation.enterprise_id or ""
    link = f"slack://app?team={team}&id={installation.app_id or ''}"
    return _page("Explain is installed",
                 f"<p>Explain is installed in <b>{html.escape(where or 'your workspace')}</b>.</p>"
                 f"<p><a href=\"{html.escape(link)}\">Open it in Slack</a>, then try <code>/explain help</code>, "
                 "or mention <code>@explain</code> in the thread of a document.</p>", 200)


def failure(args: FailureArgs) -> BoltResponse:
    minutes = max(1, args.settings.state_expiration_seconds // 60)
    reason = _FAILURES.get(args.reason, "Slack reported an error ({reason}), so nothing was installed. Start again.")
    start = html.escape(args.settings.install_path)
    return _page("Explain was not installed",
                 f"<p>{html.escape(reason.format(minutes=minutes, reason=args.reason))}</p>"
                 f"<p><a href=\"{start}\">Start the install again</a></p>", args.suggested_status_code)


def callbacks(metrics: BotMetrics) -> CallbackOptions:
    """The pages above, each install counted in `metrics` (see the module doc)."""

    def succeeded(args: SuccessArgs) -> BoltResponse:
        metrics.installs.labels("ok").inc()
        return success(args)

    def failed(args: FailureArgs) -> BoltResponse:
        metrics.installs.labels(args.reason if args.reason in _FAILURES else "other").inc()
        return failure(args)

    return CallbackOptions(success=succeeded, failure=failed)
