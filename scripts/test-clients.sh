#!/usr/bin/env bash
# The Rust client as a dependency (clients/rust, floodgate-client): the crate
# packages on its own (its protos and generated code inside it, verified by
# building the packaged crate, offline), and its normal dependency tree holds
# no load-generator crates. Its typed API is tested against the real server
# by tests/it/client_typed.rs and its protos by clients/rust/tests/generated.rs
# (both in the workspace test run).
set -euo pipefail
cd "$(dirname "$0")/.."

# --allow-dirty: the check is about the package's contents, which are the
# working tree's; it must also pass before the change is committed.
cargo package -p floodgate-client --offline --locked --allow-dirty --quiet

tree=$(cargo tree -p floodgate-client -e normal --locked --offline --prefix none)
for unwanted in clap hdrhistogram protoc-bin-vendored prost-build; do
  if grep -q "^$unwanted v" <<<"$tree"; then
    echo "test-clients.sh: floodgate-client depends on $unwanted (cargo tree -p floodgate-client -e normal -i $unwanted)" >&2
    exit 1
  fi
done
echo "floodgate-client: packaged; $(sort -u <<<"$tree" | wc -l) crates in its normal tree, no clap, hdrhistogram, protoc or prost-build"
