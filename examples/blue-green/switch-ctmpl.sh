#!/bin/sh
# The blue-green seed's switch.sh word for word, consul-template renamed consul-render: the
# seed's own Go template (default.ctmpl, beside this script) is converted when loaded.
#
#   switch-ctmpl.sh blue|green
#
# Reads CONSUL_URL; the template reads /var/live, BLUE_NAME and GREEN_NAME.
if [ $# -eq 0 ]; then
  echo "No arguments supplied"
  exit 1
fi

echo -n "$1" > /var/live

consul-render -consul=$CONSUL_URL -template="/templates/default.ctmpl:/etc/nginx/nginx.conf:nginx -s reload" -retry 30s -once
