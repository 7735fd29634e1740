#!/usr/bin/env bash
# The whole test suite: formatting, lints, every Rust test (unit, property,
# end to end, Redis), the Python client's tests and the Helm chart's tests.
# Installs redis-server from Debian's packages when it is missing (the
# Redis tests start their own on free ports and never touch another).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1; then
  echo "redis-server missing: installing Debian's redis-server package" >&2
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq redis-server >/dev/null
fi

cargo fmt --all -- --check
python3 scripts/check-links.py
python3 scripts/check-layers.py
cargo clippy --workspace --all-targets --locked -- -D warnings
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
  cargo test --workspace --locked --doc
else
  cargo test --workspace --locked --no-fail-fast
fi

./scripts/test-clients.sh

# The Python client and the Helm chart run against the release binary.
cargo build --release --locked --bin floodgate
export FLOODGATE_BIN="$PWD/target/release/floodgate"
./scripts/test-python.sh
./scripts/test-helm.sh
./scripts/test-console.sh
