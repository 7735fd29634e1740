"""The chart against a live floodgate: the PrometheusRule's metric names
against GET /metrics, the probes' paths and gRPC health service names, and
the rendered pod (env, Secret, ConfigMap) started as the kubelet would."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request

import pytest

from chartlib import (
    PRODUCTION_VALUES,
    clean_env,
    exported_metric_names,
    exported_samples,
    free_port,
    pod_command,
    promql_metric_names,
    promql_selectors,
    render,
    start_floodgate,
)


def rule_metric_names() -> dict[str, set[str]]:
    """metric name -> alerts using it, over every PrometheusRule the chart
    renders (production example and defaults with the rule enabled)."""
    used: dict[str, set[str]] = {}
    for r in (render([PRODUCTION_VALUES]), render(sets=["prometheusRule.enabled=true"])):
        assert r.rc == 0, r.stderr
        for group in r.one("PrometheusRule")["spec"]["groups"]:
            for rule in group["rules"]:
                for name in promql_metric_names(rule["expr"]):
                    used.setdefault(name, set()).add(rule.get("alert") or rule.get("record"))
    return used


def test_prometheus_rule_metrics_are_exported_by_a_live_server(dev_server):
    status, body = dev_server.get("/metrics")
    assert status == 200, f"GET /metrics answered {status}: the rules cannot be cross-checked yet"
    exported = exported_metric_names(body)
    used = rule_metric_names()
    missing = {name: sorted(alerts) for name, alerts in used.items() if name not in exported}
    assert not missing, f"metrics the PrometheusRule uses but /metrics does not export: {missing}"


# Labels Prometheus adds to every scraped series (target labels), not /metrics.
TARGET_LABELS = {"job", "namespace", "service", "pod", "instance", "endpoint", "container"}


def test_prometheus_rule_label_matchers_match_live_series(dev_server):
    """Each `metric{label="value"}` matcher in the rules (other than the
    target labels Prometheus adds) names a label the metric has, and an
    equality or regex matcher a value it takes (window="1h", method=~...)."""
    status, body = dev_server.get("/metrics")
    assert status == 200, f"GET /metrics answered {status}"
    samples = exported_samples(body)
    problems = []
    for r in (render([PRODUCTION_VALUES]), render(sets=["prometheusRule.enabled=true"])):
        for group in r.one("PrometheusRule")["spec"]["groups"]:
            for rule in group["rules"]:
                for metric, matchers in promql_selectors(rule["expr"]):
                    series = [labels for name, labels in samples if name == metric]
                    for label, op, value in matchers:
                        if label in TARGET_LABELS:
                            continue
                        values = {labels[label] for labels in series if label in labels}
                        if not values:
                            problems.append(f"{rule['alert']}: {metric} has no label {label!r} in /metrics")
                        elif op == "=" and value not in values:
                            problems.append(f"{rule['alert']}: {metric}{{{label}={value!r}}} not in {sorted(values)}")
                        elif op == "=~" and not any(re.fullmatch(value, v) for v in values):
                            problems.append(f"{rule['alert']}: {metric}{{{label}=~{value!r}}} matches none of {sorted(values)}")
    assert not problems, "\n".join(problems)
    # the alerts grouped by circuit need the label on the series
    assert any("circuit" in labels for name, labels in samples if name == "floodgate_circuit_state")


def test_http_probe_paths_answer(dev_server):
    for path in ("/healthz", "/readyz"):
        status, body = dev_server.get(path)
        assert status == 200, (path, status, body)


def test_grpc_probe_services_answer(dev_server):
    (c,) = render().one("Deployment")["spec"]["template"]["spec"]["containers"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        service = c[probe]["grpc"]["service"]
        assert dev_server.health(service) == "SERVING", (probe, service)
    assert dev_server.health("no.such.Service") == "NOT_FOUND"


def run_rendered_pod(r, secret_data=None):
    """Starts floodgate with the rendered container's args, env and config
    file, on loopback ports instead of 0.0.0.0:50051/8080."""
    args, env, config = pod_command(r, secret_data)
    fd, path = tempfile.mkstemp(prefix="floodgate-", suffix=".toml")
    with os.fdopen(fd, "w") as f:
        f.write(config)
    env = {**clean_env(), **env, "FLOODGATE_CONFIG": path}
    env["FLOODGATE_GRPC_ADDR"] = "127.0.0.1:0"
    env["FLOODGATE_HTTP_ADDR"] = "127.0.0.1:0"
    try:
        return start_floodgate(args, env), env
    finally:
        os.unlink(path)  # read once at startup


def probe_services(r):
    (c,) = r.one("Deployment")["spec"]["template"]["spec"]["containers"]
    return c["livenessProbe"]["grpc"]["service"], c["readinessProbe"]["grpc"]["service"]


def test_the_default_rendered_pod_starts_in_production_with_auth():
    r = render()
    server, env = run_rendered_pod(r)
    try:
        liveness, readiness = probe_services(r)
        assert server.health(liveness) == "SERVING"
        assert server.health(readiness) == "SERVING"
        assert server.get("/readyz")[0] == 200
        # the ServiceMonitor scrapes without a token
        assert server.get("/metrics")[0] == 200
        # generated tokens are in force: the admin route needs the admin token
        assert server.get("/debug/capacity-calculation")[0] == 401
        token = env["FLOODGATE_ADMIN_TOKENS"].split(",")[0]
        req = urllib.request.Request(
            f"http://{server.http}/debug/capacity-calculation", headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert resp.status == 200
    finally:
        server.stop()


def test_the_production_rendered_pod_stays_ready_while_redis_is_down():
    """With the production example (existingSecret, Redis): when Redis goes
    away, floodgate.v1.Admission turns NOT_SERVING (for failure_mode_deny
    routing) while the probed services, liveness and readiness, stay
    SERVING: Level 1 fails open, so the pods must stay in the Service."""
    assert shutil.which("redis-server"), "redis-server is missing: install Debian's redis-server (scripts/test.sh does)"
    port = free_port()
    redis = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = None
    try:
        deadline = time.monotonic() + 10
        while subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True).stdout.strip() != "PONG":
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.1)
        r = render([PRODUCTION_VALUES])
        secret = {
            "redis-url": f"redis://127.0.0.1:{port}/0",
            "admin-tokens": "admin-token-1",
            "frontend-tokens": "frontend-token-1",
            "worker-tokens": "worker-token-1",
        }
        server, _ = run_rendered_pod(r, secret)
        liveness, readiness = probe_services(r)
        assert server.health(liveness) == "SERVING"
        assert server.health(readiness) == "SERVING"
        assert server.health("floodgate.v1.Admission") == "SERVING"
        redis.terminate()
        redis.wait(timeout=10)
        deadline = time.monotonic() + 15
        while server.health("floodgate.v1.Admission") != "NOT_SERVING":
            assert time.monotonic() < deadline, "Admission stayed SERVING without Redis"
            time.sleep(0.2)
        assert server.health(liveness) == "SERVING"
        assert server.health(readiness) == "SERVING", "the pod would leave the Service during a store outage"
    finally:
        if server:
            server.stop()
        if redis.poll() is None:
            redis.kill()
            redis.wait()
