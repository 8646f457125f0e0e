#!/bin/sh
# Flip the live colour and render nginx.conf once: the blue-green seed's switch.sh, with
# consul-render in place of consul-template. The new config is checked with `nginx -t` before it
# replaces the old one, so a bad render never reaches the disk.
#
#   switch.sh blue|green
#
# Environment (defaults in brackets): CONSUL_URL [127.0.0.1:8500], LIVE_FILE [/var/live],
# TEMPLATE [/templates/nginx-blue-green.hbs], NGINX_CONF [/etc/nginx/nginx.conf],
# RELOAD [nginx -s reload], CHECK [nginx -t -c {{path}}].
set -eu

if [ $# -eq 0 ]; then
  echo "No arguments supplied" >&2
  exit 1
fi
case "$1" in
  blue|green) ;;
  *) echo "usage: $0 blue|green (got '$1')" >&2; exit 1 ;;
esac

printf '%s' "$1" > "${LIVE_FILE:-/var/live}"

# (Not a ${CHECK:-…} default: the braces of {{path}} would end the expansion early.)
if [ -z "${CHECK:-}" ]; then
  CHECK='nginx -t -c {{path}}'
fi

exec consul-render \
  -consul="${CONSUL_URL:-127.0.0.1:8500}" \
  -template="${TEMPLATE:-/templates/nginx-blue-green.hbs}:${NGINX_CONF:-/etc/nginx/nginx.conf}:${RELOAD:-nginx -s reload}" \
  -check "$CHECK" \
  -retry 30s -once
