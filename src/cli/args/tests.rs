//! Unit tests of `args`.

use super::*;
use clap::CommandFactory;

#[test]
fn clap_definition_is_consistent() {
    Args::command().debug_assert();
}

/// Go's way of writing a round duration in help (`1m`, `24h`), else ours (`250ms`).
fn human(d: std::time::Duration) -> String {
    match d.as_secs() {
        s if d.subsec_nanos() == 0 && s >= 3600 && s % 3600 == 0 => format!("{}h", s / 3600),
        s if d.subsec_nanos() == 0 && s >= 60 && s % 60 == 0 => format!("{}m", s / 60),
        _ => crate::config::duration::format(d),
    }
}

/// The defaults live in `config::defaults`; the help texts must say the same.
#[test]
fn help_states_the_defaults_config_applies() {
    use crate::config::defaults as d;
    let cmd = Args::command();
    let help = |long: &str| {
        cmd.get_arguments()
            .find(|a| a.get_long() == Some(long))
            .and_then(|a| a.get_help().map(ToString::to_string))
            .unwrap_or_default()
    };
    for (flag, value) in [
        ("consul-addr", d::ADDRESS.to_string()),
        ("consul-retry-attempts", d::RETRY_ATTEMPTS.to_string()),
        ("consul-retry-backoff", human(d::RETRY_BACKOFF)),
        ("consul-retry-max-backoff", human(d::RETRY_MAX_BACKOFF)),
        ("max-stale", human(d::MAX_STALE)),
        ("block-query-wait", human(d::BLOCK_QUERY_WAIT)),
        ("max-connections", d::MAX_CONNECTIONS.to_string()),
        ("once-timeout", human(d::ONCE_TIMEOUT)),
        ("exec-kill-signal", d::EXEC_KILL_SIGNAL.as_str().to_string()),
        ("exec-kill-timeout", human(d::EXEC_KILL_TIMEOUT)),
        ("reload-signal", d::RELOAD_SIGNAL.as_str().to_string()),
        ("kill-signal", d::KILL_SIGNAL.as_str().to_string()),
        ("status-consul-timeout", human(d::STATUS_CONSUL_TIMEOUT)),
        (
            "log-rotate-duration",
            human(crate::logging::ROTATE_DURATION),
        ),
        ("syslog", d::SYSLOG_FACILITY.to_string()),
    ] {
        let text = help(flag);
        assert!(
            text.contains(&format!("default {value}"))
                || text.contains(&format!("default facility {value}")),
            "-{flag}: {text:?} does not say default {value}"
        );
    }
    let level = format!("default {:?}", d::LOG_LEVEL).to_ascii_lowercase();
    assert!(help("log-level").contains(&level), "{}", help("log-level"));
}
