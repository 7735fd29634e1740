"""The Grafana dashboard and the runbooks (issue 13): every metric name in
the dashboard's PromQL and in the PrometheusRule exists in a live server's
/metrics, the chart renders the dashboard ConfigMap only when asked, and
every alert's runbook_url points at a section of docs/runbooks.md."""

from __future__ import annotations

import json
import re

import pytest

from chartlib import CHART, PRODUCTION_VALUES, REPO, exported_metric_names, helm_binaries, promql_metric_names, render, validate_doc

DASHBOARD = CHART / "dashboards" / "floodgate.json"
RUNBOOKS = REPO / "docs" / "runbooks.md"
HELMS = sorted(helm_binaries())


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def dashboard_exprs() -> list[tuple[str, str]]:
    """(panel title, expr) of every query, nested rows included."""
    out = []

    def walk(panels):
        for p in panels:
            for t in p.get("targets", []):
                out.append((p["title"], t["expr"]))
            walk(p.get("panels", []))

    walk(dashboard()["panels"])
    return out


def dashboard_metric_names() -> dict[str, set[str]]:
    """metric name -> panels (or variables) using it."""
    used: dict[str, set[str]] = {}
    for title, expr in dashboard_exprs():
        for name in promql_metric_names(expr):
            used.setdefault(name, set()).add(title)
    for var in dashboard()["templating"]["list"]:
        query = var.get("definition", "")
        for name in re.findall(r"label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)", query):
            used.setdefault(name, set()).add(f"${var['name']}")
    return used


def rules(r) -> list[dict]:
    return [rule for group in r.one("PrometheusRule")["spec"]["groups"] for rule in group["rules"]]


def test_the_dashboard_queries_capacity_decisions_latency_store_breakers_queues_and_alerts():
    names = set(dashboard_metric_names())
    for needed in (
        "floodgate_capacity_system", "floodgate_load", "floodgate_pressure_ratio", "floodgate_decisions_total",
        "floodgate_rpc_duration_seconds_bucket", "floodgate_store_errors_total", "floodgate_circuit_state",
        "floodgate_queue_depth", "floodgate_alerts_active",
    ):
        assert needed in names, f"the dashboard does not chart {needed}"
    ids = [p["id"] for p in dashboard()["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"


def test_dashboard_and_rule_metrics_are_exported_by_a_live_server(dev_server):
    status, body = dev_server.get("/metrics")
    assert status == 200, f"GET /metrics answered {status}"
    exported = exported_metric_names(body)
    used = dashboard_metric_names()
    for r in (render([PRODUCTION_VALUES]), render(sets=["prometheusRule.enabled=true"])):
        assert r.rc == 0, r.stderr
        for rule in rules(r):
            for name in promql_metric_names(rule["expr"]):
                used.setdefault(name, set()).add(rule["alert"])
    missing = {name: sorted(where) for name, where in used.items() if name not in exported}
    assert not missing, f"metrics the dashboard or the PrometheusRule use but /metrics does not export: {missing}"


@pytest.mark.parametrize("helm", HELMS)
def test_the_dashboard_configmap_is_off_by_default(helm):
    r = render(helm=helm)
    assert r.rc == 0, r.stderr
    assert not [d for d in r.docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-dashboard")]


@pytest.mark.parametrize("helm", HELMS)
def test_the_dashboard_configmap_renders_for_the_grafana_sidecar(helm):
    r = render(helm=helm, sets=["grafana.dashboard.enabled=true", "grafana.dashboard.annotations.grafana_folder=chat"])
    assert r.rc == 0, r.stderr
    cm = r.one("ConfigMap", "-dashboard")
    validate_doc(cm, "1.37.0")
    assert cm["metadata"]["name"] == "fg-floodgate-dashboard"
    assert cm["metadata"]["namespace"] == "chat"
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["annotations"] == {"grafana_folder": "chat"}
    assert json.loads(cm["data"]["floodgate.json"]) == dashboard()


def test_the_dashboard_configmap_may_go_to_grafanas_namespace():
    r = render(sets=["grafana.dashboard.enabled=true", "grafana.dashboard.namespace=monitoring"])
    assert r.rc == 0, r.stderr
    assert r.one("ConfigMap", "-dashboard")["metadata"]["namespace"] == "monitoring"


def github_anchor(heading: str) -> str:
    """The fragment a Markdown renderer (GitHub's rules) gives a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def runbook_anchors() -> list[str]:
    return [github_anchor(m) for m in re.findall(r"^## (.+)$", RUNBOOKS.read_text(), flags=re.M)]


def test_every_alert_has_a_runbook_url_whose_anchor_exists():
    anchors = set(runbook_anchors())
    for r in (render([PRODUCTION_VALUES]), render(sets=["prometheusRule.enabled=true"])):
        assert r.rc == 0, r.stderr
        for rule in rules(r):
            url = rule["annotations"]["runbook_url"]
            base, _, anchor = url.partition("#")
            assert base == "docs/runbooks.md", url
            assert anchor == rule["alert"].lower(), url
            assert anchor in anchors, f"{rule['alert']}: docs/runbooks.md has no section #{anchor}"


def test_every_runbook_section_belongs_to_an_alert():
    r = render(sets=["prometheusRule.enabled=true"])
    alerts = {rule["alert"].lower() for rule in rules(r)}
    assert set(runbook_anchors()) == alerts


def test_the_runbook_base_url_is_a_chart_value():
    base = "https://wiki.example.org/floodgate/runbooks"
    r = render(sets=["prometheusRule.enabled=true", f"prometheusRule.runbookBaseUrl={base}"])
    assert r.rc == 0, r.stderr
    urls = {rule["alert"]: rule["annotations"]["runbook_url"] for rule in rules(r)}
    assert urls["FloodgateCircuitOpen"] == f"{base}#floodgatecircuitopen"
    assert all(u.startswith(base + "#") for u in urls.values())
