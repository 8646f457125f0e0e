#!/bin/sh
# Container entrypoint for the blue-green proxy: render nginx.conf once so nginx starts with a
# real config, start nginx, then keep watching Consul and the live colour, checking every new
# config with `nginx -t` before it replaces the running one and reloading nginx after.
#
# Environment: CONSUL_URL (Consul's address), LIVE (initial colour, default blue), BLUE_NAME,
# GREEN_NAME, LIVE_FILE (default /var/live), TEMPLATE, NGINX_CONF.
set -eu

LIVE_FILE=${LIVE_FILE:-/var/live}
TEMPLATE=${TEMPLATE:-/templates/nginx-blue-green.hbs}
NGINX_CONF=${NGINX_CONF:-/etc/nginx/nginx.conf}
export LIVE_FILE

# Keep the colour a previous switch chose; otherwise start with $LIVE.
[ -s "$LIVE_FILE" ] || printf '%s' "${LIVE:-blue}" > "$LIVE_FILE"

consul-render -consul-addr="$CONSUL_URL" -template="$TEMPLATE:$NGINX_CONF" \
  -check 'nginx -t -c {{path}}' -once -once-timeout 60s
nginx

# SIGTERM (docker stop) stops consul-render cleanly; nginx is stopped with it by the container.
exec consul-render -consul-addr="$CONSUL_URL" \
  -template="$TEMPLATE:$NGINX_CONF:nginx -s reload" \
  -check 'nginx -t -c {{path}}' -wait 500ms:5s -log-level info
