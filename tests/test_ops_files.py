"""The operator's files are valid: the alert rules by Prometheus' own checker, the dashboard as
Grafana reads it. (Whether every metric they query is exported is checked against a real run's
scrape, in tests/test_operations.py.)"""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from tests.support.ops_files import ALERTS, DASHBOARD, metric_names, queries


def test_promtool_accepts_the_alert_rules() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus; .ci/run installs it)")
    done = subprocess.run([promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 7 rules found" in done.stdout


def test_the_dashboard_is_grafana_json_with_a_query_in_every_panel() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["uid"] and dashboard["title"] and isinstance(dashboard["schemaVersion"], int)
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])  # Grafana keys panels by id
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"] and all(t["expr"] and t["refId"] for t in panel["targets"]), panel["title"]
        for t in panel["targets"]:
            assert metric_names(t["expr"]), f"{panel['title']}: no metric in {t['expr']!r}"
    [variable] = dashboard["templating"]["list"]
    assert (variable["name"], variable["type"], variable["query"]) == ("datasource", "datasource", "prometheus")


def test_metric_names_are_read_out_of_promql() -> None:
    assert metric_names('histogram_quantile(0.99, sum by (le) (rate(qa_bot_placeholder_seconds_bucket[5m])))') \
        == {"qa_bot_placeholder_seconds_bucket"}
    assert metric_names('process_resident_memory_bytes and on (instance) qa_worker_queue_depth') \
        == {"process_resident_memory_bytes", "qa_worker_queue_depth"}
    assert metric_names('sum(rate(a_total{result!="ok"}[5m])) / sum(rate(a_total[5m])) > 0.2') == {"a_total"}
    assert all(metric_names(q) for q in queries())
