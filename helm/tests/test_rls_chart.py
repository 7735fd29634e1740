"""The chart carries Envoy rate-limit rules (issue 14): `rls.rules` renders a
ConfigMap of envoyproxy/ratelimit YAML files, `rls.existingConfigMap` uses
one of yours; either is mounted as a directory (no subPath, so the kubelet's
symlink swap reaches the pod and floodgate reloads it) and passed as
`--rls-config`. The rendered files pass `floodgate check-config --rls-config`."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml

from chartlib import KUBE_NEWEST, REPO, floodgate_bin, render, validate_doc

PEER = REPO / "tests" / "fixtures" / "rls" / "peer"
HELMS = ["helm", "helm3"]
MOUNT = "/etc/floodgate/rls"


def container(r):
    return r.one("Deployment")["spec"]["template"]["spec"]["containers"][0]


def volumes(r):
    return {v["name"]: v for v in r.one("Deployment")["spec"]["template"]["spec"]["volumes"]}


def inline_rules():
    """The peer's example file pasted unchanged, and a domain written as a map."""
    return {
        "rl": (PEER / "example.yaml").read_text(),
        "mongo_cps": {
            "descriptors": [
                {"key": "database", "value": "users", "rate_limit": {"unit": "minute", "requests_per_unit": 5}}
            ]
        },
    }


@pytest.mark.parametrize("helm", HELMS)
def test_inline_rules_render_a_configmap_mounted_and_passed_as_rls_config(helm):
    r = render(helm=helm, values_yaml={"rls": {"rules": inline_rules()}})
    assert r.rc == 0, r.stderr
    for doc in r.docs:
        validate_doc(doc, KUBE_NEWEST)
    cm = r.one("ConfigMap", "-rls")
    assert cm["metadata"]["name"] == "fg-floodgate-rls"
    assert sorted(cm["data"]) == ["mongo_cps.yaml", "rl.yaml"]
    assert yaml.safe_load(cm["data"]["rl.yaml"]) == yaml.safe_load((PEER / "example.yaml").read_text())
    assert yaml.safe_load(cm["data"]["mongo_cps.yaml"])["domain"] == "mongo_cps"
    c = container(r)
    assert c["args"] == ["serve", "--rls-config", MOUNT]
    mount = next(m for m in c["volumeMounts"] if m["name"] == "rls")
    assert mount == {"name": "rls", "mountPath": MOUNT, "readOnly": True}, "no subPath: reloads need the symlink swap"
    assert volumes(r)["rls"] == {"name": "rls", "configMap": {"name": "fg-floodgate-rls"}}
    # Rule changes reload live: they do not roll the pods.
    other = render(helm=helm, values_yaml={"rls": {"rules": {"rl": "domain: rl\n"}}})
    annotations = lambda x: x.one("Deployment")["spec"]["template"]["metadata"]["annotations"]  # noqa: E731
    assert annotations(other) == annotations(r)

    # The rendered files are what floodgate accepts.
    with tempfile.TemporaryDirectory() as d:
        for name, text in cm["data"].items():
            (Path(d) / name).write_text(text)
        p = subprocess.run(
            [str(floodgate_bin()), "check-config", "--rls-config", d], capture_output=True, text=True, timeout=60
        )
        assert p.returncode == 0, p.stderr
        assert "domains: mongo_cps, rl" in p.stdout


def test_an_existing_configmap_is_mounted_instead():
    r = render(values_yaml={"rls": {"existingConfigMap": "team-rules", "shadowMode": True, "responseHeaders": "ratelimit"}})
    assert r.rc == 0, r.stderr
    assert not [d for d in r.docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-rls")]
    assert volumes(r)["rls"]["configMap"] == {"name": "team-rules"}
    env = {e["name"]: e.get("value") for e in container(r)["env"]}
    assert env["FLOODGATE_RLS_SHADOW_MODE"] == "true"
    assert env["FLOODGATE_RLS_RESPONSE_HEADERS"] == "ratelimit"
    assert container(r)["args"] == ["serve", "--rls-config", MOUNT]


def check_config_of(r, files: dict[str, str]):
    """Runs the rendered init container's command with `files` as the
    mounted ConfigMap: (exit code, stderr)."""
    (init,) = r.one("Deployment")["spec"]["template"]["spec"]["initContainers"]
    assert init["image"] == container(r)["image"]
    assert init["volumeMounts"] == [{"name": "rls", "mountPath": MOUNT, "readOnly": True}]
    with tempfile.TemporaryDirectory() as d:
        for name, text in files.items():
            (Path(d) / name).write_text(text)
        args = [d if a == MOUNT else a for a in init["args"]]
        p = subprocess.run([str(floodgate_bin()), *args], capture_output=True, text=True, timeout=60)
        return p.returncode, p.stderr, d


@pytest.mark.parametrize("helm", HELMS)
def test_an_init_container_refuses_rules_floodgate_would_refuse_before_the_pod_starts(helm):
    """Issue 22: a bad rules ConfigMap, or one holding no rule file, fails
    the new pod's init container, so a rolling update keeps traffic on the old pods."""
    r = render(helm=helm, values_yaml={"rls": {"rules": {"rl": "domain: rl\ndescriptors:\n  - key: a\n    rate_limit: {unit: fortnight, requests_per_unit: 1}\n"}}})
    assert r.rc == 0, r.stderr
    for doc in r.docs:
        validate_doc(doc, KUBE_NEWEST)
    bad = r.one("ConfigMap", "-rls")["data"]
    code, stderr, d = check_config_of(r, bad)
    assert code == 1
    assert f"{d}/rl.yaml: descriptors[0].rate_limit.unit: unknown variant `fortnight`" in stderr, stderr
    # An existing ConfigMap with no rule file in it: refused, naming the path.
    r = render(helm=helm, values_yaml={"rls": {"existingConfigMap": "team-rules"}})
    code, stderr, d = check_config_of(r, {"README": "rules go here"})
    assert code == 1
    assert f"{d}: holds no rule file" in stderr, stderr
    # Good rules pass (mixed-case units as the peer's users write them).
    code, stderr, _ = check_config_of(r, {"rl.yaml": "domain: rl\ndescriptors:\n  - key: a\n    rate_limit: {unit: Minute, requests_per_unit: 1}\n"})
    assert code == 0, stderr


def test_without_rules_nothing_is_mounted():
    r = render()
    assert "initContainers" not in r.one("Deployment")["spec"]["template"]["spec"]
    c = container(r)
    assert c["args"] == ["serve"]
    assert "rls" not in volumes(r)
    assert not any(e["name"].startswith("FLOODGATE_RLS_") for e in c["env"])


@pytest.mark.parametrize("helm", HELMS)
@pytest.mark.parametrize(
    "values, needle",
    [
        ({"rls": {"rule": {}}}, "rule"),
        ({"rls": {"responseHeaders": "draft"}}, "responseHeaders"),
        ({"rls": {"rules": {"rl": 3}}}, "rl"),
        ({"rls": {"rules": {"bad/name": "domain: x\n"}}}, "bad/name"),
        ({"rls": {"rules": {"rl": "domain: rl\n"}, "existingConfigMap": "x"}}, "exclude each other"),
    ],
)
def test_bad_rls_values_are_refused(values, needle, helm):
    r = render(helm=helm, values_yaml=values)
    assert r.rc != 0
    assert needle in r.stderr, r.stderr
