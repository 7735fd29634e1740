#!/usr/bin/env bash
# The console's real-browser test (tests/console): installs Debian's
# chromium when it is missing, creates .venv-console with Playwright's Python
# package, pytest and ./clients/python (pinned in tests/console/requirements.txt),
# then runs pytest against the release binary (FLOODGATE_BIN, else a release
# build). Playwright drives the system chromium (executable_path); its own
# browser download is never run. The screenshot goes to target/console.png.
# Extra arguments go to pytest (e.g. -k wrong_token -x).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

if [ ! -x /usr/bin/chromium ]; then
  echo "test-console: installing Debian's chromium package" >&2
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi

PYTHON="${PYTHON:-python3}"
VENV="${FLOODGATE_CONSOLE_VENV:-$root/.venv-console}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "test-console: creating $VENV" >&2
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.floodgate-console.sha256"
want="$(cat tests/console/requirements.txt clients/python/pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  echo "test-console: installing the pinned test dependencies into $VENV" >&2
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check ./clients/python -r tests/console/requirements.txt
  echo "$want" >"$stamp"
fi

if [ -n "${FLOODGATE_BIN:-}" ]; then
  FLOODGATE_BIN="$(realpath "$FLOODGATE_BIN")"
else
  cargo build --release --locked --bin floodgate
  target_dir=${CARGO_TARGET_DIR:-target}
  case "$target_dir" in /*) ;; *) target_dir="$root/$target_dir" ;; esac
  FLOODGATE_BIN="$target_dir/release/floodgate"
fi
export FLOODGATE_BIN

exec "$VENV/bin/python" -m pytest -p no:cacheprovider tests/console "$@"
