# consul-render's config in the blue-green proxy image (/etc/consul-render/consul-render.hcl).
# The Consul address comes from CONSUL_HTTP_ADDR; nginx itself is the exec child:
#   consul-render -config /etc/consul-render/ -exec "nginx -g 'daemon off;'"
template {
  source      = "/templates/nginx-blue-green.hbs"
  destination = "/etc/nginx/nginx.conf"
  # nginx -t on the candidate before it replaces the running config.
  check       = "nginx -t -q -c {{path}}"
}

exec {
  # nginx reloads gracefully on SIGHUP and stops gracefully on SIGQUIT: in the tests, neither
  # dropped an in-flight request (SIGTERM and SIGINT, its fast stops, drop them). docker stop
  # sends the image's STOPSIGNAL, SIGQUIT, which reaches nginx as it is; the kill signal is
  # what consul-render's own kill signal (SIGINT, Ctrl-C) sends nginx.
  reload_signal = "SIGHUP"
  kill_signal   = "SIGQUIT"
  kill_timeout  = "30s"
}

wait {
  min = "500ms"
  max = "5s"
}

log_level = "info"
