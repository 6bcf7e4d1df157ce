#!/usr/bin/env bash
# Runs every test of the workspace on a fresh Debian machine. Installs what the tests need (the
# JS Yjs client from npm into server/tests/js/node_modules), then runs the Rust tests with
# nextest (plain `cargo test` when nextest is absent). Starts no long-lived service yet; later
# services (Redis, RabbitMQ, the MongoDB-wire server, dockerd) are started and stopped here.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1 || { echo "test.sh: $1 is required: $2" >&2; exit 2; }; }
need cargo "install Rust (rustup)"
need node "apt-get install nodejs npm (Node 18 or newer)"
need npm "apt-get install npm"

echo "== npm: the real Yjs client for the end-to-end tests"
npm ci --prefix server/tests/js --no-audit --no-fund --loglevel=error

echo "== cargo: build and run every test"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast --failure-output final
  cargo test --workspace --doc
else
  cargo test --workspace --no-fail-fast
fi
