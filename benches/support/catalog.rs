//! Generated catalogs for the benchmarks: data files of any size, one shape.

use std::fmt::Write as _;

/// The template the large-catalog benchmarks render: one nginx upstream per service.
pub const UPSTREAMS: &str = "{{#each (services)}}\nupstream {{Name}} {\n{{#each (service Name)}}  server {{Address}}:{{Port}};\n{{/each}}}\n{{/each}}\n";

/// The same text from the same file with jq (blank lines aside).
pub const UPSTREAMS_JQ: &str = r#".services | group_by(.Service) | .[] | "\nupstream \(.[0].Service) {\n" + (sort_by(.Node, .ID) | map("  server \(.Address):\(.Port);\n") | join("")) + "}""#;

/// A data file with `services` services of `per` instances each on 100 nodes (about 150
/// bytes an instance: 1 MB is about 6,700 instances).
pub fn data_json(services: usize, per: usize) -> String {
    let mut s = String::with_capacity(services * per * 160 + 8192);
    s.push_str(r#"{"datacenter": "dc1", "nodes": ["#);
    for n in 0..100 {
        let sep = if n == 0 { "" } else { "," };
        let _ = write!(
            s,
            r#"{sep}{{"Node": "node-{n}", "Address": "10.255.{n}.1"}}"#
        );
    }
    s.push_str(r#"], "services": ["#);
    for svc in 0..services {
        for k in 0..per {
            let i = svc * per + k;
            let sep = if i == 0 { "" } else { "," };
            let _ = write!(
                s,
                r#"{sep}{{"Node": "node-{}", "ID": "svc-{svc}-{k}", "Service": "svc-{svc}", "Address": "10.{}.{}.{}", "Port": {}, "Tags": ["v1", "zone-{}"], "Meta": {{"version": "{}"}}}}"#,
                i % 100,
                (i >> 16) & 255,
                (i >> 8) & 255,
                i & 255,
                8000 + k % 1000,
                k % 3,
                k % 5
            );
        }
    }
    s.push_str(r#"], "kv": {"service/live": "blue"}}"#);
    s
}
