#!/usr/bin/env bash
# The Python client's test suite (clients/python): creates a virtualenv at
# .venv if missing, installs ./clients/python[fastapi,socketio] and the pinned
# test dependencies from the package index, builds the wheel and the sdist
# (python -m build) and checks them (twine check), type-checks the package
# (mypy --strict, configured in pyproject.toml), builds the release floodgate
# binary (unless FLOODGATE_BIN names one), and runs pytest against it (each
# test starts its own floodgate on free ports; tests/test_examples.py installs
# the built wheel with its `examples` extra into a fresh virtualenv and runs
# the examples from there). Extra arguments go to pytest, e.g. `-k socketio -x`.
# Needs Python >= 3.11 with pip, and Rust (cargo).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
venv="$root/.venv"

python_ok() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; }

if [ -z "${PYTHON:-}" ]; then
  for candidate in python3.11 python3 python; do
    if command -v "$candidate" >/dev/null 2>&1 && python_ok "$candidate"; then
      PYTHON=$candidate
      break
    fi
  done
fi
if [ -z "${PYTHON:-}" ] || ! python_ok "$PYTHON"; then
  echo "test-python.sh: Python >= 3.11 is needed (set PYTHON=/path/to/python3.11)" >&2
  exit 1
fi

if ! python_ok "$venv/bin/python" || ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
  echo "creating the virtualenv $venv with $PYTHON" >&2
  rm -rf "$venv"
  if ! "$PYTHON" -m venv "$venv" >/dev/null 2>&1; then
    # Debian's python3 without python3-venv has no ensurepip: use virtualenv from the index.
    rm -rf "$venv"
    "$PYTHON" -m pip install --quiet --user --disable-pip-version-check virtualenv ||
      "$PYTHON" -m pip install --quiet --user --break-system-packages --disable-pip-version-check virtualenv
    "$PYTHON" -m virtualenv --quiet "$venv"
  fi
fi

# Not editable: the tests use the package as it installs (pip reinstalls a
# local directory every time, so edits are always picked up).
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
  "./clients/python[fastapi,socketio]" -r clients/python/requirements-test.txt

# The package as it ships: wheel + sdist, their metadata, its type hints.
dist=$(mktemp -d)
trap 'rm -rf "$dist"' EXIT
"$venv/bin/python" -m build --outdir "$dist" clients/python >/dev/null
"$venv/bin/python" -m twine check --strict "$dist"/*
(cd clients/python && "$venv/bin/python" -m mypy)
wheels=("$dist"/floodgate_client-*.whl)
export FLOODGATE_WHEEL="${wheels[0]}"

if [ -z "${FLOODGATE_BIN:-}" ]; then
  cargo build --release --locked --bin floodgate
  target_dir=${CARGO_TARGET_DIR:-target}
  case "$target_dir" in /*) ;; *) target_dir="$root/$target_dir" ;; esac
  export FLOODGATE_BIN="$target_dir/release/floodgate"
fi

cd clients/python
"$venv/bin/python" -m pytest "$@"
