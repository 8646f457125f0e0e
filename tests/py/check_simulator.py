"""Checks the Consul simulator (or a real agent) with py-consul, a client someone else wrote.

Usage: check_simulator.py HOST PORT. Exits non-zero, naming the failed check, when the
simulator answers anything other than what this third-party client expects from Consul.
Run by the Rust test `consul::simulator_agrees_with_py_consul`.
"""

import json
import sys
import threading
import time
import uuid

import consul
import requests


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {what}")


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    c = consul.Consul(host=host, port=port)
    base = f"http://{host}:{port}"
    run = uuid.uuid4().hex[:8]
    web, other, node1, node2 = f"web-{run}", f"other-{run}", f"n1-{run}", f"n2-{run}"

    # Catalog registration as py-consul sends it: lower-case top-level names.
    c.catalog.register(node1, "10.0.0.1",
                       service={"Service": web, "ID": f"{web}-1", "Port": 80, "Tags": ["v1"]},
                       check={"CheckID": f"service:{web}-1", "Name": "web check", "Status": "passing",
                              "ServiceID": f"{web}-1"})
    # Lower case all the way down, sent raw, as Go's decoder accepts it.
    body = {"node": node2, "address": "10.0.0.2", "nodemeta": {"Rack": "r2"},
            "service": {"service": web, "id": f"{web}-2", "port": 81, "tags": ["v2"]},
            "check": {"checkid": f"service:{web}-2", "name": "web check", "status": "critical",
                      "serviceid": f"{web}-2"}}
    r = requests.put(f"{base}/v1/catalog/register", data=json.dumps(body))
    check(r.status_code == 200 and r.json() is True, "catalog register with lower-case field names")

    index, nodes = c.health.service(web)
    ids = sorted(n["Service"]["ID"] for n in nodes)
    check(ids == [f"{web}-1", f"{web}-2"], f"health without passing lists every instance: {ids}")
    check(int(index) > 0, "health answers carry X-Consul-Index")
    n2 = [n for n in nodes if n["Service"]["ID"] == f"{web}-2"][0]
    check(n2["Node"]["Meta"] == {"Rack": "r2"}, "user map keys keep their case")
    check(any(ch["Status"] == "critical" for ch in n2["Checks"]), "check status kept")
    _, nodes = c.health.service(web, passing=True)
    check([n["Service"]["ID"] for n in nodes] == [f"{web}-1"], "health with passing drops the critical one")
    _, nodes = c.health.service(web, tag="v2")
    check([n["Service"]["ID"] for n in nodes] == [f"{web}-2"], "health with tag filters")
    _, nodes = c.health.service(f"nothing-{run}")
    check(nodes == [], "an unknown service is an empty list")

    _, services = c.catalog.services()
    check(sorted(services.get(web, [])) == ["v1", "v2"], f"catalog services lists the tags: {services.get(web)}")
    _, all_nodes = c.catalog.nodes()
    check({node1, node2} <= {n["Node"] for n in all_nodes}, "catalog nodes")
    _, node = c.catalog.node(node1)
    check(f"{web}-1" in node["Services"] and node["Node"]["Address"] == "10.0.0.1", "catalog node")
    _, node = c.catalog.node(f"ghost-{run}")
    check(node is None, "an unknown node is null")
    _, flat = c.catalog.service(web)
    check(sorted(s["ServiceID"] for s in flat) == [f"{web}-1", f"{web}-2"], "catalog service (flat)")
    _, dcs = None, c.catalog.datacenters()
    check(isinstance(dcs, list) and len(dcs) >= 1, f"catalog datacenters: {dcs}")

    # KV
    k = f"app-{run}"
    check(c.kv.put(f"{k}/name", "shop") is True, "kv put")
    c.kv.put(f"{k}/db/host", "db.local")
    c.kv.put(f"{k}/empty", "")
    _, item = c.kv.get(f"{k}/name")
    check(item["Value"] == b"shop", f"kv get decodes the value: {item['Value']!r}")
    _, item = c.kv.get(f"{k}/empty")
    check(item["Value"] is None, "an empty value is null")
    _, item = c.kv.get(f"{k}/missing")
    check(item is None, "a missing key is None (404)")
    _, items = c.kv.get(k, recurse=True)
    check(sorted(i["Key"] for i in items) == [f"{k}/db/host", f"{k}/empty", f"{k}/name"], "kv recurse")
    _, keys = c.kv.get(f"{k}/", keys=True, separator="/")
    check(keys == [f"{k}/db/", f"{k}/empty", f"{k}/name"], f"kv keys with a separator: {keys}")
    check(c.kv.put(f"{k}/name", "x", cas=0) is False, "kv cas=0 refuses an existing key")

    # Blocking: a relevant write wakes the watcher; an unrelated one does not.
    index, _ = c.health.service(web)

    def later(delay, fn):
        t = threading.Timer(delay, fn)
        t.start()
        return t

    later(0.3, lambda: c.catalog.register(f"n3-{run}", "10.0.0.3", service={"Service": other, "Port": 1}))
    later(0.3, lambda: c.kv.put(f"{k}/unrelated", "1"))
    later(0.8, lambda: c.catalog.register(node1, "10.0.0.1", service={"Service": web, "ID": f"{web}-3", "Port": 82}))
    started = time.time()
    new_index, nodes = c.health.service(web, index=index, wait="5s")
    took = time.time() - started
    check(0.7 <= took < 4, f"a blocking health query waits past unrelated writes and wakes on a relevant one ({took:.2f}s)")
    check(int(new_index) > int(index), "the index moved")
    check(f"{web}-3" in [n["Service"]["ID"] for n in nodes], "the answer has the new instance")

    started = time.time()
    same_index, _ = c.health.service(web, index=new_index, wait="1s")
    took = time.time() - started
    check(0.9 <= took < 3 and same_index == new_index, f"with no change it waits out `wait` and keeps the index ({took:.2f}s)")

    # Every check at once (what a watcher of thousands of services blocks on): names, tags,
    # per-check ModifyIndex; a KV write does not wake it, a check change does.
    index, checks = c.health.state("any")
    mine = {ch["CheckID"]: ch for ch in checks if ch.get("ServiceName") == web}
    check(set(mine) == {f"service:{web}-1", f"service:{web}-2"},
          f"health state any lists every check with its service's name: {sorted(mine)}")
    check(mine[f"service:{web}-1"]["ServiceTags"] == ["v1"], "health state carries the service's tags")
    _, critical = c.health.state("critical")
    check(all(ch["Status"] == "critical" for ch in critical)
          and f"service:{web}-2" in [ch["CheckID"] for ch in critical], "health state critical filters")
    before = mine[f"service:{web}-1"]["ModifyIndex"]
    later(0.3, lambda: c.kv.put(f"{k}/unrelated-2", "1"))
    later(0.8, lambda: c.catalog.register(node1, "10.0.0.1", check={
        "CheckID": f"service:{web}-1", "Name": "web check", "Status": "warning",
        "ServiceID": f"{web}-1"}))
    started = time.time()
    new_index, checks = c.health.state("any", index=index, wait="5s")
    took = time.time() - started
    check(0.7 <= took < 4 and int(new_index) > int(index),
          f"a blocking health state query waits past a KV write and wakes on a check change ({took:.2f}s)")
    changed = [ch for ch in checks if ch["CheckID"] == f"service:{web}-1"][0]
    check(changed["Status"] == "warning" and changed["ModifyIndex"] > before,
          "the changed check's ModifyIndex moved")

    index, item = c.kv.get(f"{k}/later")
    check(item is None, "blocking on a missing key starts from its 404 index")
    later(0.4, lambda: c.kv.put(f"{k}/later", "now"))
    started = time.time()
    _, item = c.kv.get(f"{k}/later", index=index, wait="5s")
    took = time.time() - started
    check(item is not None and item["Value"] == b"now" and 0.3 <= took < 4, f"creating the key wakes it ({took:.2f}s)")

    # Sessions and locks, as py-consul drives them (the calls consul-template's dedup mode makes
    # through Go's client: create with a TTL and behavior, acquire, renew, release, destroy).
    lock_key = f"{k}/lock"
    s1 = c.session.create(name="first", behavior="release", ttl=10, lock_delay=1)
    s2 = c.session.create(name="second", behavior="delete", ttl=10, lock_delay=0)
    check(len(s1) == 36 and s1 != s2, "session create returns a UUID")
    index, info = c.session.info(s1)
    check(info is not None and info["Name"] == "first" and info["Behavior"] == "release"
          and info["TTL"] == "10s" and info["LockDelay"] == 1_000_000_000 and info["Node"],
          "session info: name, behavior, TTL, lock delay (nanoseconds), the agent's node")
    _, sessions = c.session.list()
    check({s1, s2} <= {s["ID"] for s in sessions}, "session list holds both")
    _, on_node = c.session.node(info["Node"])
    check({s1, s2} <= {s["ID"] for s in on_node}, "session node lists them")
    renewed = c.session.renew(s1)
    check(renewed["ID"] == s1 and renewed["TTL"] == "10s", "renew returns the session")
    check(c.kv.put(lock_key, "leader-1", acquire=s1) is True, "acquire a free key")
    _, item = c.kv.get(lock_key)
    check(item["Session"] == s1 and item["LockIndex"] == 1 and item["Value"] == b"leader-1",
          "a held key names its session, LockIndex 1")
    check(c.kv.put(lock_key, "leader-1b", acquire=s1) is True, "acquiring again with the same session")
    _, item = c.kv.get(lock_key)
    check(item["LockIndex"] == 1 and item["Value"] == b"leader-1b", "re-acquiring keeps LockIndex, updates the value")
    check(c.kv.put(lock_key, "leader-2", acquire=s2) is False, "another session cannot acquire a held key")
    check(c.kv.put(lock_key, "x", release=s2) is False, "another session cannot release it")
    # A blocking read of the lock key wakes when its holder changes.
    index, _ = c.kv.get(lock_key)
    later(0.3, lambda: c.session.destroy(s1))
    started = time.time()
    _, item = c.kv.get(lock_key, index=index, wait="5s")
    took = time.time() - started
    check(item is not None and item["Session"] in ("", None) and item["Value"] == b"leader-1b"
          and 0.2 <= took < 4, f"destroying the holder releases the lock and wakes its readers ({took:.2f}s)")
    _, info = c.session.info(s1)
    check(info is None, "a destroyed session is gone")
    check(c.kv.put(lock_key, "leader-2", acquire=s2) is False, "no acquiring within the lock delay")
    time.sleep(1.2)
    check(c.kv.put(lock_key, "leader-2", acquire=s2) is True, "acquiring after the lock delay")
    _, item = c.kv.get(lock_key)
    check(item["Session"] == s2 and item["LockIndex"] == 2, "LockIndex counts acquisitions")
    check(c.kv.put(lock_key, "released", release=s2) is True, "the holder releases")
    _, item = c.kv.get(lock_key)
    check(item["Session"] in ("", None) and item["Value"] == b"released" and item["LockIndex"] == 2,
          "a released key keeps its LockIndex and takes the value")
    check(c.kv.put(lock_key, "mine", acquire=s2) is True, "acquire again (a release sets no lock delay)")
    c.session.destroy(s2)
    _, item = c.kv.get(lock_key)
    check(item is None, "a delete-behavior session's keys go with it")
    r = requests.put(f"{base}/v1/session/renew/{s2}")
    check(r.status_code == 404, "renewing a destroyed session is 404")
    r = requests.put(f"{base}/v1/kv/{lock_key}?acquire={s2}", data=b"x")
    check(r.status_code == 500, "acquiring with an unknown session is an error")
    r = requests.put(f"{base}/v1/session/create", json={"TTL": "1s"})
    check(r.status_code in (400, 500) and "TTL" in r.text, "a TTL under the minimum is refused")

    c.catalog.deregister(node1, service_id=f"{web}-1")
    _, nodes = c.health.service(web)
    check(f"{web}-1" not in [n["Service"]["ID"] for n in nodes], "catalog deregister of one instance")
    print("all checks passed")


if __name__ == "__main__":
    main()
