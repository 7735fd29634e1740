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

# The venv is (re)filled when the pinned requirements differ from the copy
# kept in it after the last install.
VENV="${FLOODGATE_CONSOLE_VENV:-$root/.venv-console}"
[ -x "$VENV/bin/python" ] || "${PYTHON:-python3}" -m venv "$VENV"
if ! cmp -s tests/console/requirements.txt "$VENV/floodgate-console-requirements.txt"; then
  echo "test-console: installing the pinned test dependencies into $VENV" >&2
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check ./clients/python -r tests/console/requirements.txt
  cp tests/console/requirements.txt "$VENV/floodgate-console-requirements.txt"
fi
# The local client every time (pip rebuilds a directory), so its edits are picked up.
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check ./clients/python

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
