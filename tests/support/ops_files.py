"""The operator's files in ops/ (the Grafana dashboard, the Prometheus alert rules) as data:
every PromQL query they hold, and the metric names each one reads."""
from __future__ import annotations

import json
import re

import yaml

from tests.support import ROOT

DASHBOARD = ROOT / "ops" / "grafana-dashboard.json"
ALERTS = ROOT / "ops" / "alerts.yml"
PROMQL_WORDS = frozenset({"and", "or", "unless", "bool", "offset"})


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (label matchers, groupings, ranges and
    functions taken out)."""
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\"[^\"]*\"", " ", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    words = re.findall(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\b(?!\s*\()", expr)
    return {w for w in words if w not in PROMQL_WORDS}


def queries() -> list[str]:
    """Every query of the dashboard's panels and of the alert rules."""
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    rules = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return exprs + [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
