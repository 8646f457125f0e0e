//! Property and fuzz targets on stable Rust (proptest): every parser and decoder that reads
//! what a user, a config file, a data file or a Consul agent hands us must return `Ok` or
//! `Err` for any input, never panic, abort or hang. Each target runs `FUZZ_CASES` cases
//! (default 256) in `cargo test`; a longer run is
//! `FUZZ_CASES=20000 cargo test --release --test it fuzz`.

use consul_render::config::{duration, hcl};
use consul_render::dependency;
use consul_render::source::data::Catalog;
use consul_render::source::model::{self, CatalogNode, HealthEntry, KvPair, Node};
use consul_render::template::{helpers, Engine, Store};
use proptest::prelude::*;
use serde_json::Value;
use std::sync::Arc;

fn config() -> ProptestConfig {
    let cases = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        // Failures are reported with their input; no files written beside the tests.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Any JSON value, up to a few levels deep.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "[ -~]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[A-Za-z]{1,10}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Text made mostly of the characters that matter to the grammar under test.
fn text_of(alphabet: &'static str, max: usize) -> impl Strategy<Value = String> {
    let chars: Vec<char> = alphabet.chars().collect();
    prop::collection::vec(
        prop_oneof![
            4 => prop::sample::select(chars),
            1 => any::<char>(),
        ],
        0..max,
    )
    .prop_map(|v| v.into_iter().collect())
}

/// A template built from handlebars pieces: text, helper calls with random arguments,
/// blocks, subexpressions and partials, balanced or not.
fn template() -> impl Strategy<Value = String> {
    let names: Vec<&'static str> = helpers::all().map(|s| s.name).collect();
    let arg = prop_oneof![
        "[a-z0-9/.@_-]{0,8}".prop_map(|s| format!("{s:?}")),
        (-5i64..1000).prop_map(|n| n.to_string()),
        Just("this".to_string()),
        Just("@index".to_string()),
        Just("(loop 3)".to_string()),
        Just("(service \"web\")".to_string()),
        Just("(tree \"app\")".to_string()),
    ];
    let call = (
        prop::sample::select(names),
        prop::collection::vec(arg, 0..4),
    )
        .prop_map(|(n, a)| format!("{n} {}", a.join(" ")));
    let piece = prop_oneof![
        "[ -~\n]{0,10}",
        call.clone().prop_map(|c| format!("{{{{{c}}}}}")),
        call.clone().prop_map(|c| format!(
            "{{{{#each ({c})}}}}{{{{@index}}}}:{{{{this}}}}{{{{else}}}}none{{{{/each}}}}"
        )),
        call.prop_map(|c| format!("{{{{#if ({c})}}}}y{{{{else}}}}n{{{{/if}}}}")),
        Just("{{#with (service \"web\")}}{{len this}}{{/with}}".to_string()),
        Just("{{#*inline \"p\"}}[{{this}}]{{/inline}}{{> p}}".to_string()),
        Just("{{#each (loop 2)}}".to_string()),
        Just("{{/each}}".to_string()),
        Just("{{{{raw}}}}{{x}}{{{{/raw}}}}".to_string()),
        Just("{{!-- c --}}".to_string()),
        Just("{{~ toJSON (explode (tree \"app\")) ~}}".to_string()),
    ];
    prop::collection::vec(piece, 0..8).prop_map(|p| p.concat())
}

/// A template that reads `service` instances every way handlebars can: fields, `this`, block
/// parameters, `lookup`, helpers given whole instances, nested blocks.
fn instance_template() -> impl Strategy<Value = String> {
    let field = prop::sample::select(vec![
        "Address",
        "Port",
        "ID",
        "Name",
        "Tags",
        "Checks",
        "ServiceMeta",
        "Meta",
        "Node",
        "NodeAddress",
        "Status",
        "Weights",
        "NodeMeta",
        "Nope",
        "Checks.0.Output",
        "Weights.Passing",
        "ServiceMeta.v",
    ]);
    let value = prop_oneof![
        Just("this".to_string()),
        Just("s".to_string()),
        Just("(service \"web|any\")".to_string()),
        Just("(lookup (service \"web\") 0)".to_string()),
        Just("(byTag (service \"web\"))".to_string()),
        Just("../this".to_string()),
        field.clone().prop_map(str::to_string),
        field.clone().prop_map(|f| format!("s.{f}")),
    ];
    let helper = prop::sample::select(vec![
        "toJSON",
        "len",
        "join \",\"",
        "toUpper",
        "byTag",
        "eq this",
        "contains \"a\"",
        "lookup",
        "byMeta \"v\"",
        "keys",
    ]);
    let leaf = prop_oneof![
        field.clone().prop_map(|f| format!("{{{{{f}}}}}")),
        field.clone().prop_map(|f| format!("{{{{s.{f}}}}}")),
        (helper, value.clone()).prop_map(|(h, v)| format!("{{{{{h} {v}}}}}")),
        (value.clone(), field).prop_map(|(v, f)| format!("{{{{lookup {v} \"{f}\"}}}}")),
        Just("{{@index}}{{@key}}".to_string()),
        "[a-z ,]{0,3}",
    ];
    leaf.prop_recursive(3, 24, 4, move |inner| {
        let body = prop::collection::vec(inner, 1..4).prop_map(|b| b.concat());
        prop_oneof![
            (value.clone(), body.clone())
                .prop_map(|(v, b)| format!("{{{{#each {v} as |s|}}}}{b}{{{{/each}}}}")),
            (value.clone(), body.clone())
                .prop_map(|(v, b)| format!("{{{{#with {v}}}}}{b}{{{{/with}}}}")),
            (value.clone(), body.clone())
                .prop_map(|(v, b)| format!("{{{{#if {v}}}}}{b}{{{{/if}}}}")),
            body.prop_map(|b| format!("{{{{#each (service \"web\")}}}}{b}{{{{/each}}}}")),
        ]
    })
}

/// Renders `src` to completion against `catalog` with instances carrying `fields`: the output,
/// or the render error; `None` when it does not compile or never completes.
fn render_with(
    src: &str,
    catalog: &Catalog,
    fields: &dyn Fn(&Engine) -> model::Fields,
) -> Option<Result<String, String>> {
    let engine =
        Engine::compile("t.hbs", src, &consul_render::template::Options::default()).ok()?;
    let fields = fields(&engine);
    let mut store = Store::new();
    for _ in 0..4 {
        let r = match engine.render(Arc::new(store.clone())) {
            Ok(r) => r,
            Err(e) => return Some(Err(e.to_string())),
        };
        if r.missing.is_empty() {
            return Some(Ok(r.output));
        }
        for dep in r.used {
            if store.get(&dep).is_none() {
                let value = catalog.answer_with(&dep, &fields).ok().flatten();
                store.insert(dep, value);
            }
        }
    }
    None
}

const INSTANCES: &str = r#"{"nodes": [{"Node": "n1", "Address": "10.0.0.1", "Meta": {"rack": "r"}}],
  "services": [
    {"Node": "n1", "ID": "web-1", "Service": "web", "Port": 80, "Tags": ["a", "b"], "Meta": {"v": "1"}},
    {"Node": "n1", "ID": "web-2", "Service": "web", "Address": "10.0.0.9", "Port": 81, "Tags": ["b"],
     "Status": "warning", "Weights": {"Passing": 3, "Warning": 1}}]}"#;

const DATA: &str = r#"{"nodes": [{"Node": "n1", "Address": "10.0.0.1"}],
  "services": [{"Node": "n1", "ID": "web-1", "Service": "web", "Port": 80, "Tags": ["a", "b"]}],
  "kv": {"app/a": "1", "app/b/c": "two", "greeting": "hello"}}"#;

/// Renders `src` as once mode does (a few passes, answering dependencies from the data file).
fn render_passes(src: &str, catalog: &Catalog) {
    let Ok(engine) = Engine::compile(
        "fuzz.hbs",
        src,
        &consul_render::template::Options::default(),
    ) else {
        return;
    };
    let _ = engine.problems();
    let mut store = Store::new();
    for _ in 0..4 {
        let Ok(r) = engine.render(Arc::new(store.clone())) else {
            return;
        };
        if r.missing.is_empty() {
            return;
        }
        for dep in r.used {
            if store.get(&dep).is_none() {
                let value = catalog.answer(&dep).ok().flatten();
                store.insert(dep, value);
            }
        }
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn fuzz_go_flag_rewrite(tokens in prop::collection::vec(prop_oneof![
        "-{1,2}(template|consul-addr|consul|once|retry|log-level|exec|wait|dry|kill-signal|max-stale)(=[ -~]{0,8})?",
        "[ -~]{0,10}",
        Just("--".to_string()),
        Just("check".to_string()),
    ], 0..8)) {
        let mut argv = vec!["consul-render".to_string()];
        argv.extend(tokens);
        let cmd = <consul_render::cli::Args as clap::CommandFactory>::command();
        if let Ok(rewritten) = consul_render::cli::rewrite(&argv, &cmd) {
            let _ = cmd.try_get_matches_from(&rewritten.args);
        }
    }

    #[test]
    fn fuzz_hcl_reader(src in text_of("{}[]=\"#/*\n ,.:-0123abcx<EOT\\", 200)) {
        let _ = hcl::parse(&src);
    }

    #[test]
    fn fuzz_query_grammar(q in text_of("abc.-_?=&@~|,/012 web passing any", 40)) {
        let _ = dependency::parse_service(&q);
        let _ = dependency::parse_catalog("nodes", &q, true);
        let _ = dependency::parse_node(&q);
        let _ = dependency::parse_kv("key", &q);
    }

    #[test]
    fn fuzz_duration_parser(s in text_of("0123456789.smhunµ- ", 16)) {
        if let Ok(d) = duration::parse(&s) {
            // What we print, we read back.
            prop_assert_eq!(duration::parse(&duration::format(d)), Ok(d));
        }
    }

    #[test]
    fn fuzz_data_file_loader(v in json(), raw in text_of("{}[]\":,0123abc ", 60)) {
        let _ = Catalog::from_json(&v.to_string());
        let wrapped = serde_json::json!({"services": v.clone(), "kv": v.clone(), "nodes": v});
        let _ = Catalog::from_json(&wrapped.to_string());
        let _ = Catalog::from_json(&raw);
    }

    #[test]
    fn fuzz_template_compile_and_render(src in template()) {
        let catalog = Catalog::from_json(DATA).map_err(|e| TestCaseError::fail(e.0))?;
        render_passes(&src, &catalog);
    }

    /// Once mode builds instances with only the fields a template can read: whatever the
    /// template does with them, the output (or error) is the one full instances give.
    #[test]
    fn fuzz_instance_fields_change_nothing(src in instance_template()) {
        let catalog = Catalog::from_json(INSTANCES).map_err(|e| TestCaseError::fail(e.0))?;
        let full = render_with(&src, &catalog, &|_| model::Fields::All);
        let projected = render_with(&src, &catalog, &|e| e.fields().clone());
        prop_assert_eq!(projected, full, "template: {}", src);
    }

    #[test]
    fn fuzz_raw_template_text(src in text_of("{}#/>*~!()\"' eachifwthlo=", 80)) {
        let catalog = Catalog::from_json(DATA).map_err(|e| TestCaseError::fail(e.0))?;
        render_passes(&src, &catalog);
    }

    #[test]
    fn fuzz_consul_json_decoding(v in json(), bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let q = dependency::parse_service("web").map_err(|e| TestCaseError::fail(e.to_string()))?;
        for body in [v.to_string().into_bytes(), bytes] {
            if let Ok(entries) = serde_json::from_slice::<Vec<HealthEntry>>(&body) {
                let _ = model::instances(&entries, &q, &model::Fields::All);
            }
            if let Ok(nodes) = serde_json::from_slice::<Vec<Node>>(&body) {
                let _ = model::nodes(&nodes, false);
            }
            if let Ok(Some(node)) = serde_json::from_slice::<Option<CatalogNode>>(&body) {
                let _ = model::node(&node);
            }
            if let Ok(pairs) = serde_json::from_slice::<Vec<KvPair>>(&body) {
                for p in &pairs {
                    let _ = p.check_text();
                }
                let _ = model::kv_list(&pairs, "app");
            }
        }
    }
}
