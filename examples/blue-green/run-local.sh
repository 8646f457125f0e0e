#!/usr/bin/env bash
# The blue-green scenario without Docker, everything on 127.0.0.1: a Consul (the tests'
# simulator, or the real agent at CONSUL_HTTP_ADDR), a blue and a green app instance (tiny
# Python HTTP servers), nginx, and consul-render watching Consul and the live colour.
#
#   examples/blue-green/run-local.sh           flip blue -> green -> blue, show what nginx
#                                              answers, clean up; exit 0 when it all worked
#   examples/blue-green/run-local.sh --stay    keep everything running until Ctrl-C
#
# Needs cargo, python3, curl and nginx (Debian's nginx-light).
set -euo pipefail
cd "$(dirname "$0")/../.."
stay=${1:-}

command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || { echo "needs nginx (apt-get install nginx-light)" >&2; exit 1; }
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
cargo build -q --bin consul-render --example consul-sim
BIN=target/debug

work=$(mktemp -d)
pids=()
cleanup() {
  [ -f "$work/run/nginx.pid" ] && kill -QUIT "$(cat "$work/run/nginx.pid")" 2>/dev/null || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_for() { # wait_for SECONDS COMMAND...: until the command succeeds
  local limit=$1; shift
  for _ in $(seq $((limit * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "gave up waiting for: $*" >&2; return 1
}

# 1. Consul
if [ -n "${CONSUL_HTTP_ADDR:-}" ]; then
  consul=${CONSUL_HTTP_ADDR#http://}
  echo "using the Consul agent at $consul"
else
  "$BIN/examples/consul-sim" > "$work/consul.addr" & pids+=($!)
  wait_for 10 test -s "$work/consul.addr"
  consul=$(cat "$work/consul.addr")
  echo "Consul simulator on $consul"
fi

# 2. Two app instances that answer their colour, registered as Registrator would.
for colour in blue green; do
  mkdir -p "$work/$colour"
  echo "$colour" > "$work/$colour/index.html"
  p=$(port)
  python3 -m http.server "$p" --bind 127.0.0.1 --directory "$work/$colour" >/dev/null 2>&1 & pids+=($!)
  wait_for 10 curl -sf "http://127.0.0.1:$p/"
  curl -sf -X PUT "http://$consul/v1/catalog/register" -d "{
    \"Node\": \"docker-host-1\", \"Address\": \"127.0.0.1\",
    \"Service\": {\"ID\": \"docker-host-1:bg_$colour:80\", \"Service\": \"$colour\", \"Address\": \"127.0.0.1\", \"Port\": $p},
    \"Check\": {\"CheckID\": \"service:$colour\", \"Name\": \"$colour\", \"Status\": \"passing\", \"ServiceID\": \"docker-host-1:bg_$colour:80\"}}" >/dev/null
  echo "$colour instance on 127.0.0.1:$p"
done

# 3. consul-render watching, nginx serving what it renders.
mkdir -p "$work/run"
export LIVE_FILE=$work/live LIVE_PORT=$(port) STANDBY_PORT=$(port) LISTEN_ADDRESS=127.0.0.1 NGINX_RUNTIME_DIR=$work/run
printf blue > "$LIVE_FILE"
conf=$work/nginx.conf
# As the image's entrypoint: render once so nginx starts with a real config, then watch (a
# watcher whose reload command fails, nginx not being up yet, would end with exit 14).
"$BIN/consul-render" -consul-addr="$consul" -template="templates/nginx-blue-green.hbs:$conf" \
  -check "$NGINX -t -q -c {{path}}" -once
"$NGINX" -c "$conf" -g 'daemon off;' & pids+=($!)
wait_for 10 curl -sf "http://127.0.0.1:$LIVE_PORT/"
"$BIN/consul-render" -consul-addr="$consul" \
  -template="templates/nginx-blue-green.hbs:$conf:$NGINX -c $conf -s reload" \
  -check "$NGINX -t -q -c {{path}}" -log-level info 2> "$work/consul-render.log" & pids+=($!)
echo "nginx: live on 127.0.0.1:$LIVE_PORT, standby on 127.0.0.1:$STANDBY_PORT"

show() { echo "  live answers $(curl -s "http://127.0.0.1:$LIVE_PORT/"), standby answers $(curl -s "http://127.0.0.1:$STANDBY_PORT/")"; }
answers() { [ "$(curl -s "http://127.0.0.1:$LIVE_PORT/")" = "$1" ]; }

show
for colour in green blue; do
  echo "switching to $colour (writing $LIVE_FILE)"
  printf '%s' "$colour" > "$LIVE_FILE"
  wait_for 5 answers "$colour"
  sleep 0.3
  show
done

if [ "$stay" = "--stay" ]; then
  echo "running; flip with: printf green > $LIVE_FILE   (Ctrl-C to stop)"
  wait
fi
echo "ok: the live port followed every switch"
