"""The Helm chart, rendered by real helm binaries (4.x and 3.17) and checked
offline: Kubernetes schemas, values.schema.json, the chart's own refusals,
the rendered config against the floodgate binary, and the alert rules."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import tempfile
import tomllib
from pathlib import Path

import pytest
import yaml

from chartlib import (
    CHART,
    KUBE_NEWEST,
    PRODUCTION_VALUES,
    REPO,
    floodgate_bin,
    helm_binaries,
    promql_metric_names,
    render,
    validate_doc,
)

# values file -> the oldest Kubernetes it supports
VALUES = {
    "default": ((), "1.27.0"),
    "production": ((PRODUCTION_VALUES,), "1.30.0"),
}
HELMS = ["helm", "helm3"]

# The metric names /metrics exports (the operator-surface contract).
CONTRACT_METRICS = {
    "floodgate_decisions_total",
    "floodgate_rpc_duration_seconds_bucket",
    "floodgate_rpc_duration_seconds_sum",
    "floodgate_rpc_duration_seconds_count",
    "floodgate_capacity_system",
    "floodgate_load",
    "floodgate_pressure_ratio",
    "floodgate_utilization_ratio",
    "floodgate_queue_depth",
    "floodgate_leased_tasks",
    "floodgate_dead_letters",
    "floodgate_circuit_state",
    "floodgate_processes",
    "floodgate_healthy_chat_rest_processes",
    "floodgate_process_health_ratio",
    "floodgate_process_deficit",
    "floodgate_throttle_ratio",
    "floodgate_alerts_active",
    "floodgate_store_errors_total",
    "floodgate_rls_config_last_load_failed",
}


def test_real_helm_binaries_are_installed():
    binaries = helm_binaries()
    assert set(binaries) == {"helm", "helm3"}, binaries
    versions = {
        name: subprocess.run([str(p), "version", "--short"], capture_output=True, text=True, check=True).stdout
        for name, p in binaries.items()
    }
    assert versions["helm"].startswith("v4."), versions
    assert versions["helm3"].startswith("v3."), versions


# --- rendering and offline validation ---------------------------------------


@pytest.mark.parametrize("helm", HELMS)
@pytest.mark.parametrize("values_name", VALUES)
@pytest.mark.parametrize("newest", [False, True], ids=["oldest-kube", "newest-kube"])
def test_renders_and_every_manifest_validates(values_name, helm, newest):
    files, oldest = VALUES[values_name]
    kube = KUBE_NEWEST if newest else oldest
    r = render(files, helm=helm, kube=kube)
    assert r.rc == 0, r.stderr
    assert r.docs
    for doc in r.docs:
        try:
            validate_doc(doc, kube)
        except Exception as e:  # name the object in the failure
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} (Kubernetes {kube}): {e}")


@pytest.mark.parametrize("values_name", VALUES)
def test_helm3_and_helm4_render_the_same(values_name):
    files, _ = VALUES[values_name]

    def normalized(helm):
        r = render(files, helm=helm)
        assert r.rc == 0, r.stderr
        docs = r.docs
        for d in docs:  # generated tokens differ per render
            if d["kind"] == "Secret":
                d["data"] = sorted(d.get("data") or {})
        return docs

    assert normalized("helm") == normalized("helm3")


def test_generated_tokens_do_not_roll_the_pods():
    """Tokens generated anew on each render (no cluster to look the Secret up
    in) must not change the pod template: its checksum comes from the values."""
    first, second = (render(sets=[f"podAnnotations.render=r{i}"]) for i in range(2))
    assert first.one("Secret")["data"] != second.one("Secret")["data"]
    a, b = (r.one("Deployment")["spec"]["template"]["metadata"]["annotations"] for r in (first, second))
    assert a["checksum/secret"] == b["checksum/secret"] and a["checksum/config"] == b["checksum/config"]
    changed = render(sets=["auth.adminTokens={other}"]).one("Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert changed["checksum/secret"] != a["checksum/secret"]


@pytest.mark.parametrize("helm", HELMS)
@pytest.mark.parametrize("values_name", VALUES)
def test_helm_lint_strict(values_name, helm):
    files, oldest = VALUES[values_name]
    cmd = [str(helm_binaries()[helm]), "lint", "--strict", str(CHART), "--kube-version", oldest]
    for f in files:
        cmd += ["--values", str(f)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr


def test_default_objects():
    r = render()
    assert r.kinds() == ["ConfigMap", "Deployment", "PodDisruptionBudget", "Secret", "Service", "Service", "ServiceAccount"]
    deployment = r.one("Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    secret = r.one("Secret")
    # production profile by default, so a token is generated for every role
    assert sorted(secret["data"]) == ["admin-tokens", "frontend-tokens", "worker-tokens"]
    for value in secret["data"].values():
        assert len(base64.b64decode(value)) == 40
    headless = r.one("Service", "-headless")
    assert headless["spec"]["clusterIP"] == "None"
    assert [p["name"] for p in r.one("Service", "fg-floodgate")["spec"]["ports"]] == ["grpc", "http"]


def test_production_objects():
    r = render([PRODUCTION_VALUES])
    assert r.rc == 0, r.stderr
    assert r.kinds() == [
        "ConfigMap", "Deployment", "HorizontalPodAutoscaler", "NetworkPolicy", "PodDisruptionBudget",
        "PrometheusRule", "Service", "Service", "ServiceAccount", "ServiceMonitor",
    ]
    deployment = r.one("Deployment")
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    assert deployment["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["FLOODGATE_STORE"]["valueFrom"]["secretKeyRef"] == {"name": "floodgate-credentials", "key": "redis-url"}
    assert r.one("HorizontalPodAutoscaler")["spec"]["minReplicas"] == 3
    assert r.one("PodDisruptionBudget")["spec"] == {
        "minAvailable": 2,
        "selector": {"matchLabels": {"app.kubernetes.io/name": "floodgate", "app.kubernetes.io/instance": "fg"}},
    }
    monitor = r.one("ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["port"] == "http"
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"


def test_pod_is_hardened_and_probed_over_grpc():
    spec = render().one("Deployment")["spec"]["template"]["spec"]
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (c,) = spec["containers"]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert c["livenessProbe"]["grpc"] == {"port": 50051, "service": ""}
    # Readiness asks about the server, which stays SERVING during a store
    # outage: Level 1 fails open, so pods must not all leave the Service.
    assert c["readinessProbe"]["grpc"] == {"port": 50051, "service": ""}
    assert c["startupProbe"]["grpc"] == {"port": 50051, "service": ""}
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["FLOODGATE_GRPC_ADDR"] == "0.0.0.0:50051"
    assert env["FLOODGATE_HTTP_ADDR"] == "0.0.0.0:8080"
    assert env["FLOODGATE_CONFIG"] == "/etc/floodgate/floodgate.toml"
    assert c["image"] == "floodgate:0.1.0"


def test_http_probes_are_the_alternative():
    r = render(sets=["probes.type=http"])
    assert r.rc == 0, r.stderr
    (c,) = r.one("Deployment")["spec"]["template"]["spec"]["containers"]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    r = render(sets=["probes.type=http", "probes.http.readinessPath=/readyz"])
    (c,) = r.one("Deployment")["spec"]["template"]["spec"]["containers"]
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    for doc in r.docs:
        validate_doc(doc, KUBE_NEWEST)


def test_image_repository_tag_and_digest_are_values():
    r = render(sets=["image.repository=registry.local/team/floodgate", "image.tag=1.2.3"])
    assert r.one("Deployment")["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.local/team/floodgate:1.2.3"
    digest = "sha256:" + "a" * 64
    r = render(sets=["image.repository=registry.local/floodgate", f"image.digest={digest}"])
    assert r.one("Deployment")["spec"]["template"]["spec"]["containers"][0]["image"] == f"registry.local/floodgate@{digest}"


# --- values.schema.json and the chart's own refusals ------------------------


@pytest.mark.parametrize("helm", HELMS)
@pytest.mark.parametrize(
    "setting, needle",
    [
        ("replicaCount=three", "replicaCount"),
        ("replicas=3", "replicas"),
        ("config.profile=staging", "profile"),
        ("config.runtime.concurent_per_process=5", "concurent_per_process"),
        ("config.runtime.capacity_buffer=1.5", "capacity_buffer"),
        ("store.type=postgres", "type"),
        ("store.redis.url=http://redis:6379", "url"),
        ("store.redis.prefix=floodgate", "prefix"),
        ("probes.type=tcp", "type"),
        ("prometheusRule.throttleWindow=2h", "throttleWindow"),
    ],
)
def test_values_schema_rejects(setting, needle, helm):
    r = render(sets=[setting], helm=helm)
    assert r.rc != 0, f"{setting} rendered"
    assert "schema" in r.stderr and needle in r.stderr, r.stderr


@pytest.mark.parametrize("helm", HELMS)
@pytest.mark.parametrize("sets", [["replicaCount=3"], ["replicaCount=2"], ["autoscaling.enabled=true"]])
def test_memory_store_refuses_more_than_one_replica(sets, helm):
    r = render(sets=sets, helm=helm)
    assert r.rc != 0
    assert "needs the Redis store" in r.stderr and "store.type=redis" in r.stderr, r.stderr


def test_redis_store_renders_replicas_and_keeps_the_url_in_the_secret():
    url = "redis://:s3cret@redis-master.redis.svc:6379/0"
    r = render(sets=["store.type=redis", f"store.redis.url={url}", "replicaCount=3"])
    assert r.rc == 0, r.stderr
    deployment = r.one("Deployment")
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    assert base64.b64decode(r.one("Secret")["data"]["redis-url"]).decode() == url
    assert "s3cret" not in r.one("ConfigMap")["data"]["floodgate.toml"]
    for doc in r.docs:
        validate_doc(doc, KUBE_NEWEST)


@pytest.mark.parametrize(
    "url",
    [
        "rediss://redis.redis.svc:6380/0",
        "redis-cluster://a.redis.svc:6379,b.redis.svc:6379/",
        "redis+sentinel://s1.redis.svc:26379,s2.redis.svc:26379/mymaster/0",
    ],
)
def test_every_redis_topology_floodgate_reads_renders(url):
    escaped = url.replace(",", "\\,")  # helm --set splits on bare commas
    r = render(sets=["store.type=redis", f"store.redis.url={escaped}", "replicaCount=2"])
    assert r.rc == 0, r.stderr
    assert base64.b64decode(r.one("Secret")["data"]["redis-url"]).decode() == url


def test_a_redis_tls_secret_is_mounted_and_its_files_named_to_floodgate():
    r = render(
        sets=[
            "store.type=redis",
            "store.redis.url=rediss://redis.redis.svc:6380/0",
            "replicaCount=2",
            "store.redis.tls.secretName=redis-client",
            "store.redis.tls.certKey=tls.crt",
            "store.redis.tls.keyKey=tls.key",
        ]
    )
    assert r.rc == 0, r.stderr
    pod = r.one("Deployment")["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["FLOODGATE_REDIS_CA_FILE"] == "/etc/floodgate/redis-tls/ca.crt"
    assert env["FLOODGATE_REDIS_CLIENT_CERT"] == "/etc/floodgate/redis-tls/tls.crt"
    assert env["FLOODGATE_REDIS_CLIENT_KEY"] == "/etc/floodgate/redis-tls/tls.key"
    mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["redis-tls"]["mountPath"] == "/etc/floodgate/redis-tls" and mounts["redis-tls"]["readOnly"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["redis-tls"]["secret"]["secretName"] == "redis-client"
    for doc in r.docs:
        validate_doc(doc, KUBE_NEWEST)


def test_without_a_redis_tls_secret_nothing_is_mounted():
    r = render(sets=["store.type=redis", "store.redis.url=rediss://redis.redis.svc:6380/0", "replicaCount=2"])
    assert r.rc == 0, r.stderr
    pod = r.one("Deployment")["spec"]["template"]["spec"]
    assert "redis-tls" not in {v["name"] for v in pod["volumes"]}
    assert not any(e["name"].startswith("FLOODGATE_REDIS_") for e in pod["containers"][0]["env"])


@pytest.mark.parametrize(
    "sets, needle",
    [
        (["store.redis.tls.certKey=tls.crt"], "go together"),
        (["store.redis.url=redis://redis.redis.svc:6379/0"], "not a rediss"),
    ],
)
def test_redis_tls_settings_that_cannot_work_are_refused(sets, needle):
    base = ["store.type=redis", "store.redis.url=rediss://redis.redis.svc:6380/0", "store.redis.tls.secretName=s"]
    r = render(sets=base + sets)
    assert r.rc != 0 and needle in r.stderr, r.stderr


def test_the_network_policy_lets_floodgate_reach_every_redis_port():
    r = render(
        sets=[
            "store.type=redis",
            "store.redis.url=redis+sentinel://s1.redis.svc:26379/mymaster",
            "networkPolicy.enabled=true",
            "networkPolicy.egress.enabled=true",
            "store.redis.extraPorts={26379}",
        ]
    )
    assert r.rc == 0, r.stderr
    ports = {p["port"] for rule in r.one("NetworkPolicy")["spec"]["egress"] for p in rule["ports"]}
    assert {6379, 26379} <= ports


def test_min_replicas_reaches_floodgates_config_file():
    r = render(sets=["store.type=redis", "store.redis.url=redis://r:6379/0", "store.redis.minReplicas=1"])
    assert r.rc == 0, r.stderr
    assert "redis_min_replicas = 1" in r.one("ConfigMap")["data"]["floodgate.toml"]
    assert "redis_min_replicas" not in render().one("ConfigMap")["data"]["floodgate.toml"]


def test_an_unknown_redis_scheme_is_refused():
    r = render(sets=["store.type=redis", "store.redis.url=memcached://cache:11211", "replicaCount=2"])
    assert r.rc != 0 and "/store/redis/url" in r.stderr, r.stderr


def test_redis_store_needs_a_url():
    r = render(sets=["store.type=redis"])
    assert r.rc != 0 and "store.redis.url" in r.stderr, r.stderr


def test_production_profile_needs_tokens():
    r = render(sets=["auth.generate=false"])
    assert r.rc != 0 and "refuses to start without caller tokens" in r.stderr, r.stderr
    # development may run open
    r = render(sets=["auth.generate=false", "config.profile=development"])
    assert r.rc == 0, r.stderr
    assert not r.one("Secret").get("data")


def test_given_tokens_are_joined_into_the_secret():
    r = render(sets=["auth.adminTokens={a1,a2}", "auth.frontendTokens={f1}", "auth.workerTokens={w1}"])
    data = {k: base64.b64decode(v).decode() for k, v in r.one("Secret")["data"].items()}
    assert data == {"admin-tokens": "a1,a2", "frontend-tokens": "f1", "worker-tokens": "w1"}


def test_existing_secret_replaces_the_charts_secret():
    r = render(sets=["secrets.existingSecret=mine", "store.type=redis", "replicaCount=2"])
    assert r.rc == 0, r.stderr
    assert "Secret" not in r.kinds()
    env = r.one("Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in env if "secretKeyRef" in e.get("valueFrom", {})}
    assert {ref["name"] for ref in refs.values()} == {"mine"}
    assert set(refs) == {"FLOODGATE_STORE", "FLOODGATE_ADMIN_TOKENS", "FLOODGATE_FRONTEND_TOKENS", "FLOODGATE_WORKER_TOKENS"}


def test_prestop_sleep_needs_kubernetes_1_30():
    r = render([PRODUCTION_VALUES], kube="1.29.0")
    assert r.rc != 0 and "preStopSleepSeconds needs Kubernetes 1.30" in r.stderr, r.stderr


def test_pdb_takes_one_of_min_available_and_max_unavailable():
    r = render(sets=["podDisruptionBudget.minAvailable=1"])
    assert r.rc != 0 and "only one of" in r.stderr, r.stderr


# --- the rendered config file -------------------------------------------------


@pytest.mark.parametrize("values_name", VALUES)
def test_rendered_config_passes_floodgate_check_config(values_name, tmp_path):
    files, _ = VALUES[values_name]
    text = render(files).one("ConfigMap")["data"]["floodgate.toml"]
    parsed = tomllib.loads(text)
    # only settings: the store URL and tokens never go into the ConfigMap
    assert set(parsed) <= {"profile", "redis_prefix", "redis_timeout_ms", "redis_min_replicas", "runtime"}, parsed
    path = tmp_path / "floodgate.toml"
    path.write_text(text)
    p = subprocess.run([str(floodgate_bin()), "check-config", str(path)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    if values_name == "production":
        given = yaml.safe_load(PRODUCTION_VALUES.read_text())["config"]["runtime"]
        assert parsed["runtime"] == given


def test_check_config_catches_a_bad_cross_field_value(tmp_path):
    """The schema checks types and ranges; the binary checks the rest (here
    anonymous_threshold above registered_threshold)."""
    r = render(values_yaml={"config": {"runtime": {"anonymous_threshold": 0.9}}})
    assert r.rc == 0, r.stderr
    path = tmp_path / "floodgate.toml"
    path.write_text(r.one("ConfigMap")["data"]["floodgate.toml"])
    p = subprocess.run([str(floodgate_bin()), "check-config", str(path)], capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "anonymous_threshold" in p.stderr, p.stdout + p.stderr


# --- the PrometheusRule -------------------------------------------------------


def prometheus_rules(sets=(), values_yaml=None):
    r = render([PRODUCTION_VALUES], sets=sets, values_yaml=values_yaml)
    assert r.rc == 0, r.stderr
    return {rule["alert"]: rule for g in r.one("PrometheusRule")["spec"]["groups"] for rule in g["rules"]}


# alert -> (severity, metric, comparison) for the seed's alert conditions
SEED_ALERTS = {
    "FloodgateCircuitOpen": ("critical", "floodgate_circuit_state", "== 2"),
    "FloodgateNoHealthyChatRestProcess": ("critical", "floodgate_healthy_chat_rest_processes", "== 0"),
    "FloodgateUtilizationCritical": ("critical", "floodgate_utilization_ratio", "> 0.9"),
    "FloodgateThrottleRateCritical": ("critical", "floodgate_throttle_ratio", "> 0.2"),
    "FloodgateProcessHealthRatioLow": ("warning", "floodgate_process_health_ratio", "< 0.8"),
    "FloodgatePressureHigh": ("warning", "floodgate_pressure_ratio", "> 0.8"),
    "FloodgateThrottleRateHigh": ("warning", "floodgate_throttle_ratio", "> 0.1"),
    "FloodgateProcessDeficit": ("warning", "floodgate_process_deficit", "> 0"),
}


def test_prometheus_rule_carries_the_seed_alert_conditions():
    rules = prometheus_rules()
    for alert, (severity, metric, comparison) in SEED_ALERTS.items():
        rule = rules[alert]
        assert rule["labels"]["severity"] == severity
        assert rule["labels"]["team"] == "chat-platform"
        assert metric in rule["expr"] and rule["expr"].endswith(comparison), rule["expr"]
        assert 'job="fg-floodgate",namespace="chat"' in rule["expr"]
    assert "for" in rules["FloodgateThrottleRateCritical"], "sustained"
    assert 'window="1h"' in rules["FloodgateThrottleRateCritical"]["expr"]


def test_prometheus_rule_uses_only_contract_metric_names():
    used = set()
    for rule in prometheus_rules().values():
        names = promql_metric_names(rule["expr"])
        assert names, rule["expr"]
        used |= names
    assert used <= CONTRACT_METRICS, used - CONTRACT_METRICS


def test_prometheus_rule_thresholds_and_disabling():
    rules = prometheus_rules(
        sets=[
            "prometheusRule.disabledAlerts={FloodgateAdmissionLatencyHigh}",
            "prometheusRule.throttleWindow=6h",
            "prometheusRule.metricSelector=service=\"floodgate\"",
        ],
        # A ratio: --set would pass 0.85 as a string.
        values_yaml={"prometheusRule": {"thresholds": {"utilizationCritical": 0.85}}},
    )
    assert "FloodgateAdmissionLatencyHigh" not in rules
    assert rules["FloodgateUtilizationCritical"]["expr"].endswith("> 0.85")
    assert 'window="6h"' in rules["FloodgateThrottleRateHigh"]["expr"]
    assert '{service="floodgate"}' in rules["FloodgateProcessDeficit"]["expr"]


@pytest.mark.parametrize(
    "expr, names",
    [
        ('max by (namespace, job) (floodgate_load{job="x"}) > 0.8', {"floodgate_load"}),
        (
            'histogram_quantile(0.99, sum by (le) (rate(floodgate_rpc_duration_seconds_bucket{method=~"a|b"}[5m]))) > 1e3',
            {"floodgate_rpc_duration_seconds_bucket"},
        ),
        ("absent(up{job=\"by\"}) or on (job) vector(1) unless bool foo offset 5m", {"up", "foo"}),
        ("sum without (pod) (rate(a_total[1m])) / ignoring (x) group_left (y) b", {"a_total", "b"}),
    ],
)
def test_promql_metric_name_extraction(expr, names):
    assert promql_metric_names(expr) == names


# --- the container image recipe -----------------------------------------------


def test_dockerfile_is_multi_stage_non_root_and_its_context_builds_the_workspace(tmp_path):
    dockerfile = (REPO / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)", dockerfile, re.M)
    assert len(stages) >= 2, stages
    assert "distroless" in stages[-1] or "slim" in stages[-1], stages[-1]
    final = dockerfile[dockerfile.rindex("\nFROM ") :]
    user = re.findall(r"^USER\s+(\S+)", final, re.M)
    assert user and user[-1].split(":")[0] not in ("0", "root"), user
    assert "cargo build --release --locked --bin floodgate" in dockerfile
    # Every COPY source exists and is let through by .dockerignore.
    ignore = [l.strip() for l in (REPO / ".dockerignore").read_text().splitlines() if l.strip() and not l.startswith("#")]
    assert ignore[0] == "*", "the context is an allow-list"
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    sources = []
    for line in re.findall(r"^COPY\s+(?!--from)(.+)$", dockerfile, re.M):
        *srcs, _dest = line.split()
        sources += srcs
    assert sources
    for src in sources:
        assert (REPO / src).exists(), src
        assert src.rstrip("/") in allowed, f"{src} is excluded by .dockerignore"
    # Those files alone make a complete, locked Cargo workspace.
    assert shutil.which("cargo"), "cargo is needed to check the Docker build context (install Rust)"
    for src in sources:
        s, d = REPO / src, tmp_path / src
        if s.is_dir():
            shutil.copytree(s, d, ignore=shutil.ignore_patterns("target"))
        else:
            shutil.copy2(s, d)
    p = subprocess.run(
        ["cargo", "metadata", "--locked", "--offline", "--format-version", "1", "--no-deps"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert p.returncode == 0, p.stderr
    p = subprocess.run(
        ["cargo", "tree", "--locked", "--offline", "-e", "normal,build", "-p", "floodgate", "--depth", "1"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert p.returncode == 0, p.stderr
