#!/usr/bin/env python3
"""Writes data.json: APPS applications deployed blue-green on HOSTS Docker hosts, as Registrator
and Docker Flow leave them in Consul. Deterministic: the same file every run.

  python3 gen-data.py [APPS] > data.json      (default 150 applications: 300 services)
"""
import json
import sys

apps = int(sys.argv[1]) if len(sys.argv) > 1 else 150
hosts = 10
nodes = [{"Node": f"docker-host-{h}", "Address": f"10.0.1.{10 + h}"} for h in range(hosts)]
services, kv = [], {}
for a in range(apps):
    app = f"app{a:03d}"
    live = "blue" if a % 2 == 0 else "green"
    kv[f"docker-flow/{app}/color"] = live
    # Half route by a KV path, a quarter by Registrator's SERVICE_TAGS=path=..., a quarter not at all.
    tags = []
    if a % 4 in (0, 1):
        kv[f"docker-flow/{app}/path"] = f"/{app}"
    elif a % 4 == 2:
        tags = [f"path=/{app}", "http"]
    for c, colour in enumerate(("blue", "green")):
        for i in range(2):
            h = (a + c + i) % hosts
            port = 32768 + (a * 4 + c * 2 + i)
            services.append({
                "Node": f"docker-host-{h}",
                "Service": f"{app}-{colour}",
                "ID": f"docker-host-{h}:{app}_{colour}_{i}:8080",
                "Address": f"10.0.1.{10 + h}",
                "Port": port,
                "Tags": tags,
            })
json.dump({"nodes": nodes, "services": services, "kv": kv}, sys.stdout, indent=1)
sys.stdout.write("\n")
