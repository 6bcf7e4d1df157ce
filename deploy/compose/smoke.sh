#!/usr/bin/env bash
# Brings up deploy/docker-compose.yml on this machine with no registry and checks that the stack
# works, then takes it down again:
#
#   deploy/compose/smoke.sh [--keep]        (as root: the images are built with debootstrap)
#
# 1. Builds the images offline (deploy/build-images.sh --stand-ins): the real server and worker
#    images, and one stand-in image of Debian's redis, rabbitmq, nginx and prometheus packages and
#    SecantusDB for MongoDB (deploy/compose/offline.yml maps them). Grafana has no offline stand-in
#    and is not started; its dashboards and provisioning are checked by the deploy tests instead.
# 2. Checks the compose files: `config` of the stack alone with env.example, and with offline.yml.
# 3. Starts every service but Grafana under a project name of its own, on free ports, and runs
#    mongo-init.js against the MongoDB stand-in with mongosh.
# 4. Real Yjs clients (smoke-clients.mjs): sign up and create a session through the load balancer;
#    one client on each node and one through the load balancer edit one document and converge
#    (the nodes share the room through Redis).
# 5. The workers wrote the snapshots to MongoDB (their codecrafter_persist_writes_total, as scraped
#    by Prometheus, and the snapshots collection); Prometheus scrapes both nodes and both workers
#    and has loaded the alert rules.
# 6. A rolling restart: each node in turn gets SIGTERM (docker stop), must exit 0 within its
#    grace period, and is started again; a fresh client then reads every edit.
#
# Env: SMOKE_BINARIES=DIR takes prebuilt binaries (the tests pass their debug build; default: a
# release build), COMPOSE (default: `docker compose` if it works, else docker-compose).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DEPLOY=$(cd "$HERE/.." && pwd)
ROOT=$(cd "$DEPLOY/.." && pwd)
keep=""
[ "${1:-}" != --keep ] || keep=1

if [ -n "${COMPOSE:-}" ]; then
  read -r -a compose_cmd <<<"$COMPOSE"
elif docker compose version >/dev/null 2>&1; then
  compose_cmd=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
  compose_cmd=(docker-compose)
else
  echo "smoke: docker compose is required (apt-get install docker-compose)" >&2
  exit 2
fi
mongosh="$ROOT/storage/tests/mongosh/node_modules/.bin/mongosh"
[ -x "$mongosh" ] || { echo "smoke: mongosh missing: npm ci --prefix storage/tests/mongosh" >&2; exit 2; }
[ -d "$ROOT/server/tests/js/node_modules" ] || { echo "smoke: Yjs clients missing: npm ci --prefix server/tests/js" >&2; exit 2; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
step() { echo "== smoke: $*"; }
fail() { echo "smoke: FAILED: $*" >&2; exit 1; }

project="ccsmoke$$"
tag="smoke"
work=$(mktemp -d)
http_port=$(free_port) prometheus_port=$(free_port) mongo_port=$(free_port)
{
  echo "JWT_SECRET=$(openssl rand -hex 32)"
  echo "MONGO_ROOT_USER=smoke"
  echo "MONGO_ROOT_PASSWORD=$(openssl rand -hex 12)"
  # SecantusDB runs without authentication.
  echo "MONGO_URL=mongodb://mongo:27017/?directConnection=true"
  echo "AMQP_URL=amqp://codecrafter:codecrafter-dev@rabbitmq:5672/%2f"
  echo "GRAFANA_ADMIN_PASSWORD=$(openssl rand -hex 12)"
  echo "CODECRAFTER_CORS_ORIGINS=http://127.0.0.1:$http_port"
  echo "CODECRAFTER_TAG=$tag"
  echo "CODECRAFTER_HTTP_PORT=$http_port"
  echo "PROMETHEUS_PORT=$prometheus_port"
  echo "GRAFANA_PORT=$(free_port)"
  echo "SMOKE_MONGO_PORT=$mongo_port"
} >"$work/env"

compose() { "${compose_cmd[@]}" -p "$project" --env-file "$work/env" -f "$DEPLOY/docker-compose.yml" -f "$HERE/offline.yml" "$@"; }

finish() {
  local status=$?
  if [ $status -ne 0 ]; then
    echo "smoke: the last lines of each service's log:" >&2
    compose logs --no-color --tail 25 >&2 2>&1 || true
  fi
  if [ -z "$keep" ]; then
    compose down -v --remove-orphans >/dev/null 2>&1 || true
  else
    echo "smoke: --keep: the stack is still up (project $project, env $work/env)"
  fi
  [ -n "$keep" ] || rm -rf "$work"
  exit $status
}

step "images (deploy/build-images.sh --stand-ins)"
bash "$DEPLOY/build-images.sh" --stand-ins --tag "$tag" ${SMOKE_BINARIES:+--binaries "$SMOKE_BINARIES"}

step "compose files"
# The stack as users run it, with the example secrets; then with the offline images on top.
"${compose_cmd[@]}" -p "$project" --env-file "$DEPLOY/env.example" -f "$DEPLOY/docker-compose.yml" config -q
compose config -q
trap finish EXIT

step "up: every service but grafana (project $project, load balancer on 127.0.0.1:$http_port)"
compose up -d --no-build lb node1 node2 worker1 worker2 redis rabbitmq mongo prometheus
lb="http://127.0.0.1:$http_port"
deadline=$((SECONDS + 180))
until curl -fsS "$lb/ready" 2>/dev/null | grep -q '"status":"ready"'; do
  [ $SECONDS -lt $deadline ] || fail "the stack was not ready through the load balancer after 180 s: $(curl -sS "$lb/ready" 2>&1)"
  sleep 1
done
echo "   ready in $SECONDS s: $(curl -fsS "$lb/ready")"

step "mongo-init.js against the MongoDB stand-in"
"$mongosh" --quiet "mongodb://127.0.0.1:$mongo_port/?directConnection=true" --file "$ROOT/mongo-init.js" >/dev/null

ip_of() { docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$(compose ps -q "$1")"; }
node1="ws://$(ip_of node1):5000/ws" node2="ws://$(ip_of node2):5000/ws"

step "Yjs clients on node1, node2 and through the load balancer"
written=$(node "$HERE/smoke-clients.mjs" "$lb" write "$node1" "$node2")
echo "   $written"
# As JSON: a command substitution would drop the text's trailing newline.
field() { python3 -c 'import json,sys; print(json.dumps(json.loads(sys.argv[1])[sys.argv[2]]))' "$1" "$2"; }
session=$(field "$written" session) token=$(field "$written" token) text=$(field "$written" text)

prom="http://127.0.0.1:$prometheus_port"
query() { curl -fsS --get "$prom/api/v1/query" --data-urlencode "query=$1" | python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "")'; }
wait_query() { # wait_query WHAT PROMQL: until the query's first value is a number > 0
  local deadline=$((SECONDS + 90)) value=""
  while :; do
    value=$(query "$2" || true)
    python3 -c 'import sys; sys.exit(0 if sys.argv[1] and float(sys.argv[1]) > 0 else 1)' "$value" 2>/dev/null && break
    [ $SECONDS -lt $deadline ] || fail "$1: $2 is '${value}' after 90 s"
    sleep 2
  done
  echo "   $1: $2 = $value"
}

step "workers persisted the snapshots; Prometheus scrapes every node and worker"
wait_query "both nodes and both workers are up" 'count(up{job=~"codecrafter|codecrafter-worker"} == 1) == 4'
wait_query "snapshots written by the workers" 'sum(codecrafter_persist_writes_total{job="codecrafter-worker"})'
snapshots=$("$mongosh" --quiet "mongodb://127.0.0.1:$mongo_port/codecrafter?directConnection=true" --eval 'db.snapshots.countDocuments({})')
[ "${snapshots:-0}" -gt 0 ] || fail "no snapshot in MongoDB"
echo "   MongoDB holds $snapshots snapshot(s)"
rules=$(curl -fsS "$prom/api/v1/rules" | python3 -c 'import json,sys; print(sum(len(g["rules"]) for g in json.load(sys.stdin)["data"]["groups"]))')
[ "$rules" -gt 0 ] || fail "Prometheus loaded no rules"
echo "   Prometheus loaded $rules rules"

step "rolling restart: SIGTERM to each node in turn, exit 0, start again"
for node in node1 node2; do
  id=$(compose ps -q "$node")
  started=$SECONDS
  compose stop "$node" >/dev/null
  code=$(docker inspect -f '{{.State.ExitCode}}' "$id")
  [ "$code" = 0 ] || fail "$node exited with $code on SIGTERM"
  echo "   $node stopped cleanly in $((SECONDS - started)) s"
  compose start "$node" >/dev/null
  deadline=$((SECONDS + 60))
  until [ "$(docker inspect -f '{{.State.Health.Status}}' "$id")" = healthy ]; do
    [ $SECONDS -lt $deadline ] || fail "$node not healthy again after 60 s"
    sleep 1
  done
done
read_back=$(node "$HERE/smoke-clients.mjs" "$lb" read "$session" "$token" "$text")
echo "   $read_back"

step "passed"
