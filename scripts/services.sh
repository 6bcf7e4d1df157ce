#!/usr/bin/env bash
# Installs and starts the real services the tests talk to, each on its own port under a scratch
# directory, and stops them again. Sourced by scripts/test.sh; usable by hand:
#
#   source scripts/services.sh && services_start && cargo nextest run ... ; services_stop
#
# Exports CODECRAFTER_TEST_REDIS_URL and CODECRAFTER_TEST_MONGO_URL for the tests. No real MongoDB
# server can be installed on the machines this runs on, so MongoDB is SecantusDB (PyPI), a server
# speaking the MongoDB wire protocol on WiredTiger storage.

SERVICES_ROOT="${SERVICES_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
SERVICES_ENV="$SERVICES_ROOT/.test-env"
SERVICES_REDIS_PORT="${SERVICES_REDIS_PORT:-26379}"
SERVICES_MONGO_PORT="${SERVICES_MONGO_PORT:-27117}"
SERVICES_PIDS=()

services_install() {
  if ! command -v redis-server >/dev/null 2>&1; then
    echo "== apt: redis-server"
    if [ "$(id -u)" -eq 0 ]; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
    else
      sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
    fi
    # The package starts a system-wide instance on 6379; the tests use their own.
  fi
  if ! command -v promtool >/dev/null 2>&1; then
    # `promtool check metrics` lints the live /metrics (server/tests/it/ops.rs). Debian ships it in the
    # prometheus package; its own server must not start: a policy-rc.d says no while installing.
    echo "== apt: prometheus (for promtool)"
    local sudo="" policy=/usr/sbin/policy-rc.d added_policy=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    if [ ! -e "$policy" ]; then
      printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null && $sudo chmod +x "$policy" && added_policy=1
    fi
    $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    [ -z "$added_policy" ] || $sudo rm -f "$policy"
  fi
  if [ ! -x "$SERVICES_ENV/venv/bin/python" ] || ! "$SERVICES_ENV/venv/bin/python" -c 'import secantus' 2>/dev/null; then
    echo "== pip: secantusdb (MongoDB-wire server) into $SERVICES_ENV/venv"
    mkdir -p "$SERVICES_ENV"
    python3 -m venv "$SERVICES_ENV/venv"
    "$SERVICES_ENV/venv/bin/pip" install -q --disable-pip-version-check secantusdb
  fi
  # The OpenAPI validator for the /api-docs test (server/tests/it/ops.rs).
  if ! "$SERVICES_ENV/venv/bin/python" -c 'import openapi_spec_validator' 2>/dev/null; then
    echo "== pip: openapi-spec-validator into $SERVICES_ENV/venv"
    "$SERVICES_ENV/venv/bin/pip" install -q --disable-pip-version-check "openapi-spec-validator==0.9.0"
  fi
  # The README quick start test runs curl; the rediss:// and docs-page tests run openssl.
  local tool missing=()
  for tool in curl openssl; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "== apt: ${missing[*]}"
    if [ "$(id -u)" -eq 0 ]; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
      sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
  fi
}

# Wait until TCP port $1 accepts connections, for at most $2 seconds.
services_wait_port() {
  local port=$1 deadline=$((SECONDS + $2))
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then
      echo "services: nothing listens on port $port after $2 s" >&2
      return 1
    fi
    sleep 0.2
  done
}

services_start() {
  services_install
  local run="$SERVICES_ENV/run"
  rm -rf "$run" && mkdir -p "$run/redis" "$run/mongo"
  echo "== redis-server on port $SERVICES_REDIS_PORT"
  redis-server --port "$SERVICES_REDIS_PORT" --bind 127.0.0.1 --dir "$run/redis" --save "" \
    --appendonly no --daemonize no >"$run/redis.log" 2>&1 &
  SERVICES_PIDS+=($!)
  echo "== secantus (MongoDB wire) on port $SERVICES_MONGO_PORT"
  "$SERVICES_ENV/venv/bin/python" -m secantus --port "$SERVICES_MONGO_PORT" \
    --storage-path "$run/mongo" >"$run/mongo.log" 2>&1 &
  SERVICES_PIDS+=($!)
  services_wait_port "$SERVICES_REDIS_PORT" 20 || { cat "$run/redis.log" >&2; return 1; }
  services_wait_port "$SERVICES_MONGO_PORT" 60 || { cat "$run/mongo.log" >&2; return 1; }
  export CODECRAFTER_TEST_REDIS_URL="redis://127.0.0.1:$SERVICES_REDIS_PORT"
  export CODECRAFTER_TEST_MONGO_URL="mongodb://127.0.0.1:$SERVICES_MONGO_PORT/?directConnection=true"
}

services_stop() {
  local pid
  for pid in "${SERVICES_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${SERVICES_PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  SERVICES_PIDS=()
}
