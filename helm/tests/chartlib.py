"""Helpers for the chart tests: rendering with a real helm, offline schema
validation, PromQL metric-name extraction, /metrics parsing, and running the
floodgate binary the way the rendered Deployment would."""

from __future__ import annotations

import base64
import os
import re
import select
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "floodgate"
PRODUCTION_VALUES = CHART / "ci" / "production-values.yaml"
RELEASE = "fg"
NAMESPACE = "chat"
VENV_BIN = Path(os.environ.get("FLOODGATE_HELM_VENV", REPO / ".venv-helm")) / "bin"

# The oldest Kubernetes each values file supports (Chart.yaml's kubeVersion
# is >=1.27; the production example's preStop sleep needs 1.30) and the
# newest that kubernetes-validate carries schemas for.
KUBE_NEWEST = "1.37.0"


def helm_binaries() -> dict[str, Path]:
    """helm (4.x) and helm3 (3.17) from the venv, or HELM / HELM3 overrides."""
    found = {}
    for name, env in (("helm", "HELM"), ("helm3", "HELM3")):
        path = Path(os.environ.get(env, VENV_BIN / name))
        if path.exists():
            found[name] = path
    return found


@dataclass(frozen=True)
class Render:
    rc: int
    stdout: str
    stderr: str

    @property
    def docs(self) -> list[dict[str, Any]]:
        return [d for d in yaml.safe_load_all(self.stdout) if d]

    def kinds(self) -> list[str]:
        return sorted(d["kind"] for d in self.docs)

    def one(self, kind: str, name_suffix: str = "") -> dict[str, Any]:
        found = [d for d in self.docs if d["kind"] == kind and d["metadata"]["name"].endswith(name_suffix)]
        assert len(found) == 1, f"expected one {kind}*{name_suffix}, got {[d['metadata']['name'] for d in found]}"
        return found[0]


@lru_cache(maxsize=None)
def _render(helm: str, values: tuple[str, ...], sets: tuple[str, ...], kube: str) -> Render:
    cmd = [helm, "template", RELEASE, str(CHART), "--namespace", NAMESPACE, "--kube-version", kube]
    for v in values:
        cmd += ["--values", v]
    for s in sets:
        cmd += ["--set", s]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    return Render(p.returncode, p.stdout, p.stderr)


def render(
    values: Iterable[str | Path] = (),
    sets: Iterable[str] = (),
    helm: str = "helm",
    kube: str = KUBE_NEWEST,
    values_yaml: dict[str, Any] | None = None,
) -> Render:
    """Runs `helm template` (cached per arguments). values_yaml is written to
    a temporary values file given after the others."""
    binaries = helm_binaries()
    files = [str(v) for v in values]
    if values_yaml is not None:
        fd, path = tempfile.mkstemp(prefix="values-", suffix=".yaml")
        with os.fdopen(fd, "w") as f:
            yaml.safe_dump(values_yaml, f)
        files.append(path)
    try:
        return _render(str(binaries[helm]), tuple(files), tuple(sets), kube)
    finally:
        if values_yaml is not None:
            os.unlink(files[-1])


# --- offline validation -----------------------------------------------------

CRD_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor"), ("monitoring.coreos.com/v1", "PrometheusRule")}


def validate_builtin(doc: dict[str, Any], kube: str) -> None:
    """Strict validation (unknown fields rejected) against the bundled
    Kubernetes OpenAPI-derived JSON schemas of that version."""
    import kubernetes_validate

    kubernetes_validate.validate(doc, kube, strict=True)


def _prune_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _prune_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_prune_none(v) for v in value]
    return value


def validate_crd(doc: dict[str, Any]) -> None:
    """Checks a ServiceMonitor / PrometheusRule against models generated from
    the prometheus-operator v0.80 CRD schemas: types and required fields by
    pydantic, unknown fields by a round trip (the models drop fields they do
    not know, so anything lost on the way was not in the CRD schema)."""
    from cloudcoil.models.prometheus_operator import v1

    model = {"ServiceMonitor": v1.ServiceMonitor, "PrometheusRule": v1.PrometheusRule}[doc["kind"]]
    parsed = model.model_validate(doc)
    back = _prune_none(parsed.model_dump(by_alias=True, exclude_unset=True, mode="json"))
    if back != doc:
        raise AssertionError(f"{doc['kind']} has fields the CRD schema does not know: {_diff(doc, back)}")


def _diff(a: Any, b: Any, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in a:
            if k not in b:
                out.append(f"{path}.{k}")
            else:
                out += _diff(a[k], b[k], f"{path}.{k}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _diff(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def validate_doc(doc: dict[str, Any], kube: str) -> None:
    if (doc.get("apiVersion"), doc.get("kind")) in CRD_KINDS:
        validate_crd(doc)
    else:
        validate_builtin(doc, kube)


# --- PromQL and /metrics ----------------------------------------------------

_PROMQL_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
    "and", "or", "unless", "offset", "inf", "nan", "atan2", "start", "end",
}


def promql_metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (no full parser: strips
    strings, label matchers, ranges and grouping clauses, then keeps the
    identifiers that are not functions, keywords or parts of numbers)."""
    s = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`', '""', expr)
    if "__name__" in s:
        raise ValueError(f"__name__ matchers are not supported: {expr}")
    s = re.sub(r"\{[^}]*\}", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    names = set()
    for m in re.finditer(r"(?<![\w.])[A-Za-z_:][A-Za-z0-9_:]*", s):
        word = m.group(0)
        if word.lower() in _PROMQL_KEYWORDS:
            continue
        if re.match(r"\s*\(", s[m.end():]):
            continue  # a function call
        names.add(word)
    return names


_MATCHER = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:\\.|[^"\\])*)"')


def promql_selectors(expr: str) -> list[tuple[str, list[tuple[str, str, str]]]]:
    """(metric, [(label, op, value), ...]) for each `metric{...}` selector."""
    return [
        (m.group(1), _MATCHER.findall(m.group(2)))
        for m in re.finditer(r"([A-Za-z_:][A-Za-z0-9_:]*)\s*\{([^}]*)\}", expr)
    ]


def exported_samples(text: str) -> list[tuple[str, dict[str, str]]]:
    """(name, labels) of every sample line of a Prometheus text exposition."""
    samples = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([A-Za-z_:][A-Za-z0-9_:]*)(\{([^}]*)\})?\s", line)
        if m:
            samples.append((m.group(1), {k: v for k, _, v in _MATCHER.findall(m.group(3) or "")}))
    return samples


def exported_metric_names(text: str) -> set[str]:
    """Series names a Prometheus text exposition makes queryable: every
    sample's name, plus every declared family with its derived series (a
    labelled family with no child yet has a TYPE line but no sample)."""
    names: set[str] = set()
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("#"):
            parts = line.split()
            if len(parts) >= 4 and parts[1] == "TYPE":
                name, kind = parts[2], parts[3]
                names.add(name)
                if kind in ("histogram", "gaugehistogram"):
                    names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
                elif kind == "summary":
                    names |= {f"{name}_sum", f"{name}_count"}
                elif kind == "counter" and not name.endswith("_total"):
                    names |= {f"{name}_total", f"{name}_created"}
            continue
        names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return names


# --- running floodgate ------------------------------------------------------


def floodgate_bin() -> Path:
    return Path(os.environ.get("FLOODGATE_BIN", REPO / "target" / "release" / "floodgate"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    proc: subprocess.Popen
    grpc: str
    http: str
    log: list[str] = field(default_factory=list)

    def get(self, path: str, timeout: float = 5) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://{self.http}{path}", timeout=timeout) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace")

    def health(self, service: str, timeout: float = 5) -> str:
        """grpc.health.v1 Check: SERVING, NOT_SERVING, ... or the gRPC error code."""
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        with grpc.insecure_channel(self.grpc) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
            except grpc.RpcError as e:
                return e.code().name
            return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def clean_env() -> dict[str, str]:
    """The caller's environment without any FLOODGATE_* setting or RUST_LOG."""
    return {k: v for k, v in os.environ.items() if not k.startswith("FLOODGATE_") and k != "RUST_LOG"}


def start_floodgate(args: list[str], env: dict[str, str], timeout: float = 20) -> Server:
    """Starts the binary and waits for its `floodgate listening grpc=.. http=..` line."""
    proc = subprocess.Popen(
        [str(floodgate_bin()), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    log: list[str] = []
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            line = proc.stdout.readline()
            if not line:
                break
            log.append(line.rstrip())
            m = re.search(r"floodgate listening grpc=(\S+) http=(\S+)", line)
            if m:
                return Server(proc, m.group(1), m.group(2), log)
        elif proc.poll() is not None:
            break
    proc.kill()
    rest = proc.stdout.read() if proc.stdout else ""
    proc.wait()
    raise AssertionError(
        f"floodgate {' '.join(args)} did not report listening (exit {proc.returncode}):\n"
        + "\n".join(log)
        + rest
    )


def pod_command(render: Render, secret_data: dict[str, str] | None = None) -> tuple[list[str], dict[str, str], str]:
    """The rendered floodgate container as (args, env, config file text): env
    values and secretKeyRefs resolved (from the rendered Secret, or
    secret_data standing in for an existingSecret), the downward-API pod name
    filled in."""
    deployment = render.one("Deployment")
    (container,) = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "floodgate"]
    secrets: dict[str, dict[str, str]] = {}
    for doc in render.docs:
        if doc["kind"] == "Secret":
            data = {k: base64.b64decode(v).decode() for k, v in (doc.get("data") or {}).items()}
            data.update(doc.get("stringData") or {})
            secrets[doc["metadata"]["name"]] = data
    env: dict[str, str] = {}
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = str(var["value"])
            continue
        source = var["valueFrom"]
        if "fieldRef" in source:
            assert source["fieldRef"]["fieldPath"] == "metadata.name", source
            env[var["name"]] = "fg-floodgate-7d9c8b5f4-x2x9q"
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            data = secrets.get(ref["name"], secret_data if secret_data is not None else {})
            if ref["key"] in data:
                env[var["name"]] = data[ref["key"]]
            else:
                assert ref.get("optional"), f"secret {ref['name']} has no key {ref['key']}"
        else:
            raise AssertionError(f"unexpected env source {source}")
    (config_map,) = [d for d in render.docs if d["kind"] == "ConfigMap"]
    return list(container.get("args", [])), env, config_map["data"]["floodgate.toml"]
