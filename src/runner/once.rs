//! Once mode: render every template, fetch what the pass discovered (concurrently, each unique
//! dependency once, with retries), render again, until all are complete; nothing is returned
//! for writing unless every template completed.

use crate::dependency::Dependency;
use crate::runner::Job;
use crate::source::{SourceError, Sources};
use crate::template::scope::DepSet;
use crate::template::{Missing, Store, TemplateError};
use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

/// Why once mode could not finish.
#[derive(Debug, thiserror::Error)]
pub enum OnceError {
    #[error("{0}")]
    Template(TemplateError),
    #[error("{0}")]
    Fetch(String),
    /// Things that will never arrive in once mode (absent keys, missing files, empty safeLs).
    #[error("{0}")]
    NeverArrived(String),
    #[error("{0}")]
    Timeout(String),
}

/// Statistics of one once run, for logs and benchmarks.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub passes: usize,
    pub fetches: usize,
}

/// What a complete once run rendered.
#[derive(Debug)]
pub struct Finished {
    /// In job order.
    pub outputs: Vec<String>,
    /// Every dependency the final pass read, each once, in first-use order.
    pub used: Vec<Dependency>,
    pub stats: Stats,
    /// The values the final pass read.
    pub store: Arc<Store>,
}

/// Renders every job to completion.
pub async fn once(
    jobs: &[Job],
    sources: &Sources,
    timeout: Duration,
) -> Result<Finished, OnceError> {
    let mut store = Arc::new(Store::new());
    let mut stats = Stats::default();
    let mut pending_report: Vec<(String, Missing)> = Vec::new();
    let work = async {
        loop {
            stats.passes += 1;
            let snapshot = store.clone();
            let mut outputs = Vec::with_capacity(jobs.len());
            // Sets in first-use order: thousands of dependencies must not cost n² comparisons.
            let mut used = DepSet::default();
            let mut wanted = DepSet::default();
            let mut never: Vec<(String, Missing)> = Vec::new();
            pending_report.clear();
            for job in jobs {
                let r = job
                    .engine
                    .render(snapshot.clone())
                    .map_err(OnceError::Template)?;
                for m in &r.missing {
                    match m {
                        Missing::Pending(d) => {
                            if !wanted.contains(d) {
                                wanted.insert(d.clone());
                            }
                            pending_report.push((job.name.clone(), m.clone()));
                        }
                        Missing::Absent(_) | Missing::Empty(_) => {
                            never.push((job.name.clone(), m.clone()));
                        }
                    }
                }
                used.extend(r.used);
                outputs.push(r.output);
            }
            if !never.is_empty() {
                return Err(OnceError::NeverArrived(format!(
                    "once mode cannot render; this will not arrive:\n{}",
                    describe(&never)
                )));
            }
            if wanted.is_empty() {
                drop(snapshot);
                return Ok((
                    outputs,
                    used.into_iter().collect(),
                    std::mem::take(&mut store),
                ));
            }
            drop(snapshot);
            let wanted: Vec<Dependency> = wanted.into_iter().collect();
            let fetched = futures_join(sources, &wanted).await;
            stats.fetches += wanted.len();
            for (dep, result) in wanted.into_iter().zip(fetched) {
                let value = result.map_err(|e| OnceError::Fetch(format!("{dep}: {e}")))?;
                Arc::make_mut(&mut store).insert(dep, value);
            }
        }
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(result) => result.map(|(outputs, used, store)| Finished {
            outputs,
            used,
            stats,
            store,
        }),
        Err(_) => Err(OnceError::Timeout(format!(
            "once mode gave up after {} (-once-timeout); still waiting for:\n{}",
            crate::config::duration::format(timeout),
            describe(&pending_report)
        ))),
    }
}

/// Fetches every dependency at once, each under the retry policy.
async fn futures_join(
    sources: &Sources,
    deps: &[Dependency],
) -> Vec<Result<Option<serde_json::Value>, SourceError>> {
    let set = deps
        .iter()
        .map(|dep| async move { sources.fetch_retrying(dep).await.map(|f| f.value) });
    join_all(set.collect()).await
}

/// Polls every future to completion concurrently, keeping their order. futures-util's: it polls
/// only the futures that were woken. (Polling all of them at every wake-up, as this did before,
/// made once mode quadratic in its dependencies: 7,500 fetches spent most of their CPU there.)
pub(crate) async fn join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    futures_util::future::join_all(futures).await
}

fn describe(list: &[(String, Missing)]) -> String {
    let mut seen = HashSet::new();
    let mut out = String::new();
    for (template, m) in list {
        if !seen.insert((template.clone(), m.clone())) {
            continue;
        }
        let dep = m.dependency();
        let why = match (m, dep) {
            (Missing::Absent(_), Dependency::Key { path, .. }) => {
                format!("key {path:?} does not exist (use keyOrDefault \"{path}\" \"DEFAULT\" if it is optional)")
            }
            (Missing::Absent(_), Dependency::File { path: p, .. }) => {
                format!("file {} does not exist", p.display())
            }
            (Missing::Absent(_), _) => format!("{dep} does not exist"),
            (Missing::Empty(_), _) => {
                format!("{dep} is empty (safeLs/safeTree refuse to render an empty list)")
            }
            (Missing::Pending(_), _) => format!("{dep} has not arrived"),
        };
        let _ = writeln!(out, "  {template}: {why}");
    }
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::data::DataSource;
    use crate::source::Sources;

    #[tokio::test]
    async fn join_all_keeps_order() {
        let make = |n: i32| async move { n };
        let out = join_all(vec![make(1), make(2)]).await;
        assert_eq!(out, vec![1, 2]);
    }

    use crate::runner::testing::{job, NO_RETRY as RETRY};

    #[tokio::test]
    async fn nested_queries_take_several_passes() {
        let data = DataSource::from_json(
            r#"{"nodes": [{"Node": "n", "Address": "1.1.1.1"}],
                "services": [{"Node": "n", "Service": "a", "Port": 1}, {"Node": "n", "Service": "b", "Port": 2}]}"#,
        )
        .unwrap();
        let jobs = [job(
            "{{#each (services)}}{{#each (service Name)}}{{Name}}:{{Port}} {{/each}}{{/each}}",
        )];
        let done = once(&jobs, &Sources::data(data, RETRY), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(done.outputs[0], "a:1 b:2 ");
        assert_eq!(done.stats.passes, 3);
        // `services`, then `service` for each name.
        assert_eq!(done.used.len(), 3);
    }

    #[tokio::test]
    async fn missing_key_fails_at_once() {
        let data = DataSource::from_json("{}").unwrap();
        let err = once(
            &[job("{{key \"nope\"}}")],
            &Sources::data(data, RETRY),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&err, OnceError::NeverArrived(m) if m.contains("keyOrDefault")),
            "{err}"
        );
    }
}
