//! consul-template's retry policy: after a failure, wait `backoff × 2^n` (with jitter), at most
//! `max_backoff`, for `attempts` retries (0 = forever); only errors that may pass are retried.

use crate::config::Retry;
use crate::dependency::Dependency;
use crate::source::{Block, Fetched, Source, SourceError};
use backon::{BackoffBuilder, ExponentialBuilder, Retryable};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// The longest wait when `max_backoff` is 0 (consul-template: no cap).
const NO_CAP: Duration = Duration::from_secs(3600);

fn policy(r: &Retry, forever: bool) -> ExponentialBuilder {
    let max = if r.max_backoff.is_zero() {
        NO_CAP
    } else {
        r.max_backoff
    };
    let p = ExponentialBuilder::default()
        .with_min_delay(r.backoff)
        .with_max_delay(max.max(r.backoff))
        .with_factor(2.0)
        .with_jitter();
    if forever || r.attempts == 0 {
        p.without_max_times()
    } else {
        p.with_max_times(r.attempts as usize)
    }
}

/// The delays between tries under `r`: `attempts` of them, or endless with `forever`.
pub fn delays(r: &Retry, forever: bool) -> impl Iterator<Item = Duration> {
    policy(r, forever).build()
}

/// Fetches `dep`, retrying what may pass under `r`; the final error says how many tries it took.
pub async fn fetch(
    source: &dyn Source,
    dep: &Dependency,
    block: Option<Block>,
    r: &Retry,
) -> Result<Fetched, SourceError> {
    let tries = AtomicU32::new(0);
    let op = || async {
        tries.fetch_add(1, Ordering::Relaxed);
        source.fetch(dep, block).await
    };
    if !r.enabled {
        return op().await;
    }
    op.retry(policy(r, false))
        .sleep(tokio::time::sleep)
        .when(|e| matches!(e, SourceError::Retryable(_)))
        .notify(|e, wait| tracing::warn!("{e}; retrying in {}ms", wait.as_millis()))
        .await
        .map_err(|e| match e {
            SourceError::Retryable(m) => SourceError::Retryable(format!(
                "{m} (gave up after {} attempts)",
                tries.load(Ordering::Relaxed)
            )),
            fatal => fatal,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap() {
        let r = Retry {
            enabled: true,
            attempts: 5,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(500),
        };
        let d: Vec<Duration> = delays(&r, false).collect();
        assert_eq!(d.len(), 5);
        // Jitter only adds (up to the delay itself): the floor doubles, then holds at the cap.
        for (got, floor) in d.iter().zip([100, 200, 400, 500, 500]) {
            assert!(*got >= Duration::from_millis(floor), "{d:?}");
        }
        assert!(delays(&r, true).take(100).count() == 100);
    }
}
