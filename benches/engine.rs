//! The engine's own costs, with divan: compiling large templates, rendering large catalogs
//! (once mode's passes, from a data file in memory), loading data files.
//!
//! `cargo bench --bench engine`. The whole-process figures against jq are `--bench large`.

#[path = "support/catalog.rs"]
#[allow(dead_code)] // the jq program is for `--bench large`
mod catalog;

// The binary's allocator, so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use consul_render::config::{Retry, Template, TemplateSource};
use consul_render::runner::{self, Job};
use consul_render::source::data::DataSource;
use consul_render::source::model::FieldSet;
use consul_render::source::Sources;
use consul_render::template::{Engine, Options};
use std::time::Duration;

fn main() {
    divan::main();
}

const RETRY: Retry = Retry {
    enabled: false,
    attempts: 0,
    backoff: Duration::ZERO,
    max_backoff: Duration::ZERO,
};

/// A template of `lines` one-line blocks (`{{#if true}}a{{/if}}`): two tags each.
#[divan::bench(args = [1_000, 8_000, 32_000], sample_count = 20)]
fn compile(bencher: divan::Bencher, lines: usize) {
    let src = "{{#if true}}a{{/if}}\n".repeat(lines);
    bencher.bench(|| Engine::compile("big.hbs", &src, &Options::default()).map(|_| ()));
}

/// `services`, then `service` for each, then every instance's address and port.
#[divan::bench(args = [1_000, 10_000, 100_000], sample_count = 10)]
fn render(bencher: divan::Bencher, instances: usize) {
    let per = instances.min(100);
    let data = catalog::data_json(instances / per, per);
    let engine = Engine::compile("upstreams.hbs", catalog::UPSTREAMS, &Options::default())
        .expect("the template compiles");
    let sources = Sources::data(
        DataSource::from_json(&data)
            .expect("the data file loads")
            .with_fields(FieldSet::new(engine.fields().clone())),
        RETRY,
    );
    let jobs = [Job {
        config: Template::new(TemplateSource::Inline(catalog::UPSTREAMS.into())),
        engine,
        name: "upstreams.hbs".into(),
        id: String::new(),
    }];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    bencher.bench_local(|| {
        rt.block_on(runner::once(&jobs, &sources, Duration::from_secs(60)))
            .map(|done| done.outputs.len())
    });
}

/// Parsing and checking a data file of about this many MB.
#[divan::bench(args = [1, 10, 100], sample_count = 3)]
fn load(bencher: divan::Bencher, megabytes: usize) {
    let data = catalog::data_json(megabytes * 67, 100);
    bencher
        .counter(divan::counter::BytesCount::new(data.len()))
        .bench(|| DataSource::from_json(&data).map(|_| ()));
}
