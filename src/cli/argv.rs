//! Go `flag`-package syntax in front of clap: `-once`, `-wait 5s`, `-consul=addr`, `-once=false`.
//!
//! clap cannot parse single-dash long flags, so every flag token is rewritten to clap's
//! `--name=value` form before clap sees it. What is a flag, which flags take values and which
//! names are old aliases all come from clap's own definition (`Args::command()`), never from a
//! second list kept by hand. Go's rules kept here: one or two dashes; a value flag takes the next
//! token whatever it looks like; booleans take no value or a joined one (`-once false` leaves
//! `false` as an extra argument, an error); parsing stops at the first non-flag or `--`.

use clap::Command;
use std::fmt;

/// Flag families consul-template has and we deliberately do not: rejected with a clear reason.
const UNSUPPORTED: &[(&str, &str)] = &[
    ("vault-", "Vault is not supported yet"),
    ("nomad-", "Nomad is not supported yet"),
    (
        "default-left-delimiter",
        "custom delimiters are not supported (handlebars templates)",
    ),
    (
        "default-right-delimiter",
        "custom delimiters are not supported (handlebars templates)",
    ),
    (
        "consul-transport-",
        "transport tuning flags are not supported",
    ),
];

/// A subcommand named before any flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subcommand {
    /// `consul-render check …`: syntax-check templates, contact nothing.
    Check,
    /// `consul-render capture …`: write a data file from what the templates read from Consul.
    Capture,
    /// `consul-render convert FILE [-o OUT] [-check]`: a Go template as handlebars (its
    /// arguments are in `Rewritten::rest`).
    Convert,
    /// `consul-render completions SHELL`: print a shell completion script.
    Completions(clap_complete::Shell),
    /// `consul-render man`: print the man page (roff).
    Man,
}

/// argv in clap's syntax, plus what the user should be told (deprecated aliases).
#[derive(Debug, Default)]
pub struct Rewritten {
    pub args: Vec<String>,
    pub warnings: Vec<String>,
    pub subcommand: Option<Subcommand>,
    /// A subcommand's own arguments (`convert`).
    pub rest: Vec<String>,
}

/// A command line Go's `flag` package would reject too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgvError(pub String);

impl fmt::Display for ArgvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ArgvError {}

struct FlagInfo {
    primary: String,
    takes_value: bool,
    go_bool: bool,
    is_alias: bool,
}

fn lookup(cmd: &Command, name: &str) -> Option<FlagInfo> {
    for arg in cmd.get_arguments() {
        let action = arg.get_action();
        let short_match =
            name.len() == 1 && arg.get_short().map(String::from).as_deref() == Some(name);
        let Some(long) = arg.get_long() else {
            continue;
        };
        let alias = arg.get_all_aliases().unwrap_or_default().contains(&name);
        if long == name || alias || short_match {
            let go_bool = arg.get_num_args().is_some_and(|n| n.min_values() == 0);
            let takes_value = action.takes_values() && !go_bool;
            return Some(FlagInfo {
                primary: long.to_string(),
                takes_value,
                go_bool,
                is_alias: alias,
            });
        }
    }
    None
}

fn known_names(cmd: &Command) -> Vec<String> {
    let mut names = Vec::new();
    for arg in cmd.get_arguments() {
        if let Some(long) = arg.get_long() {
            names.push(long.to_string());
        }
    }
    names
}

fn unknown_flag(cmd: &Command, name: &str) -> ArgvError {
    if let Some((_, why)) = UNSUPPORTED
        .iter()
        .find(|(prefix, _)| name.starts_with(prefix))
    {
        return ArgvError(format!(
            "flag -{name} is not supported by consul-render: {why}"
        ));
    }
    let best = known_names(cmd)
        .into_iter()
        .map(|k| (strsim::jaro_winkler(name, &k), k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match best {
        Some((_, k)) => ArgvError(format!(
            "flag provided but not defined: -{name} (did you mean -{k}?)"
        )),
        None => ArgvError(format!("flag provided but not defined: -{name}")),
    }
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Rewrites `argv` (program name first) into clap's syntax.
pub fn rewrite(argv: &[String], cmd: &Command) -> Result<Rewritten, ArgvError> {
    let mut out = Rewritten::default();
    let mut iter = argv.iter().peekable();
    if let Some(program) = iter.next() {
        out.args.push(program.clone());
    }
    match iter.peek().map(|s| s.as_str()) {
        Some("check") => {
            iter.next();
            out.subcommand = Some(Subcommand::Check);
        }
        Some("capture") => {
            iter.next();
            out.subcommand = Some(Subcommand::Capture);
        }
        Some("completions") => {
            iter.next();
            let shell = iter.next().map(String::as_str).unwrap_or_default();
            let shell = shell.parse::<clap_complete::Shell>().map_err(|_| {
                ArgvError(format!(
                    "completions {shell:?}: name a shell (bash, zsh, fish, elvish, powershell)"
                ))
            })?;
            out.subcommand = Some(Subcommand::Completions(shell));
            return Ok(out);
        }
        Some("convert") => {
            iter.next();
            out.subcommand = Some(Subcommand::Convert);
            out.rest = iter.cloned().collect();
            return Ok(out);
        }
        Some("man") => {
            iter.next();
            out.subcommand = Some(Subcommand::Man);
            return Ok(out);
        }
        _ => {}
    }
    while let Some(token) = iter.next() {
        if token == "--" {
            // Go: everything after `--` is positional; clap reports it as an extra argument.
            out.args.push(token.clone());
            out.args.extend(iter.cloned());
            break;
        }
        let Some(body) = token.strip_prefix('-').filter(|b| !b.is_empty()) else {
            // First non-flag: Go stops parsing here; the rest are extra arguments.
            out.args.push(token.clone());
            out.args.extend(iter.cloned());
            break;
        };
        let body = body.strip_prefix('-').unwrap_or(body);
        if body.is_empty() || body.starts_with('-') || body.starts_with('=') {
            return Err(ArgvError(format!("bad flag syntax: {token}")));
        }
        let (name, joined) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (body, None),
        };
        let Some(flag) = lookup(cmd, name) else {
            return Err(unknown_flag(cmd, name));
        };
        if flag.is_alias {
            out.warnings.push(format!(
                "flag -{name} is deprecated; use -{} instead",
                flag.primary
            ));
        }
        let primary = &flag.primary;
        if flag.go_bool {
            match joined {
                None => out.args.push(format!("--{primary}")),
                Some(v) => {
                    let b = parse_go_bool(v).ok_or_else(|| {
                        ArgvError(format!(
                            "invalid boolean value {v:?} for -{name}: parse error"
                        ))
                    })?;
                    out.args.push(format!("--{primary}={b}"));
                }
            }
        } else if flag.takes_value {
            let value = match joined {
                Some(v) => v.to_string(),
                None => iter
                    .next()
                    .cloned()
                    .ok_or_else(|| ArgvError(format!("flag needs an argument: -{name}")))?,
            };
            out.args.push(format!("--{primary}={value}"));
        } else {
            if joined.is_some() {
                return Err(ArgvError(format!("flag -{name} takes no value")));
            }
            out.args.push(format!("--{primary}"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Args;
    use clap::{CommandFactory, Parser};
    use std::time::Duration;

    fn rw(args: &[&str]) -> Result<Rewritten, ArgvError> {
        let mut v = vec!["consul-render".to_string()];
        v.extend(args.iter().map(std::string::ToString::to_string));
        rewrite(&v, &Args::command())
    }

    fn parse(args: &[&str]) -> Args {
        let r = rw(args).expect("rewrite");
        Args::try_parse_from(&r.args).expect("clap parse")
    }

    #[test]
    fn single_and_double_dash_with_joined_or_separate_values() {
        let a = parse(&["-wait=5s", "--max-stale", "1s", "-consul-addr", "h:1"]);
        assert_eq!(a.wait.map(|w| w.min), Some(Duration::from_secs(5)));
        assert_eq!(a.max_stale.map(|d| d.0), Some(Duration::from_secs(1)));
        assert_eq!(a.consul_addr.as_deref(), Some("h:1"));
    }

    #[test]
    fn go_bools() {
        assert_eq!(parse(&["-once"]).once, Some(true));
        assert_eq!(parse(&["--once=false"]).once, Some(false));
        assert_eq!(parse(&["-once=T"]).once, Some(true));
        assert_eq!(parse(&["-consul-retry=0"]).consul_retry, Some(false));
        assert_eq!(parse(&[]).once, None);
        assert!(rw(&["-once=maybe"]).is_err());
        // `-once false`: false is an extra argument, which clap rejects.
        let r = rw(&["-once", "false"]).unwrap();
        assert!(Args::try_parse_from(&r.args).is_err());
    }

    #[test]
    fn value_flags_take_the_next_token_even_with_a_dash() {
        let a = parse(&["-exec", "-weird", "-once"]);
        assert_eq!(a.exec.as_deref(), Some("-weird"));
        assert_eq!(a.once, Some(true));
        assert_eq!(
            rw(&["-wait"]).unwrap_err().0,
            "flag needs an argument: -wait"
        );
    }

    #[test]
    fn repeatable_flags_accumulate() {
        let a = parse(&["-template", "in:out", "-template=x.hbs:out.txt:e f"]);
        let commands: Vec<_> = a.template.iter().map(|t| t.command.as_deref()).collect();
        assert_eq!(commands, [None, Some("e f")]);
    }

    #[test]
    fn old_aliases_work_and_warn() {
        let r = rw(&["-consul=10.0.0.1:8500", "-retry", "30s", "-token=x"]).unwrap();
        assert_eq!(r.warnings.len(), 3);
        assert!(r.warnings[0].contains("-consul is deprecated; use -consul-addr"));
        let a = Args::try_parse_from(&r.args).unwrap();
        assert_eq!(a.consul_addr.as_deref(), Some("10.0.0.1:8500"));
        assert_eq!(
            a.consul_retry_backoff.map(|d| d.0),
            Some(Duration::from_secs(30))
        );
        assert_eq!(a.consul_token.as_deref(), Some("x"));
    }

    #[test]
    fn unknown_flags_are_named_with_a_suggestion() {
        let e = rw(&["-onse"]).unwrap_err();
        assert_eq!(
            e.0,
            "flag provided but not defined: -onse (did you mean -once?)"
        );
        let e = rw(&["-zzzzzz"]).unwrap_err();
        assert_eq!(e.0, "flag provided but not defined: -zzzzzz");
        let e = rw(&["-vault-addr=x"]).unwrap_err();
        assert!(e.0.contains("-vault-addr is not supported"), "{e}");
    }

    #[test]
    fn help_and_version_short_and_long() {
        assert_eq!(rw(&["-h"]).unwrap().args[1], "--help");
        assert_eq!(rw(&["-help"]).unwrap().args[1], "--help");
        assert_eq!(rw(&["-v"]).unwrap().args[1], "--version");
        assert_eq!(rw(&["-version"]).unwrap().args[1], "--version");
    }

    #[test]
    fn stops_at_first_positional_and_double_dash() {
        let r = rw(&["-once", "extra", "-dry"]).unwrap();
        assert_eq!(r.args[1..], ["--once", "extra", "-dry"]);
        let r = rw(&["--", "-once"]).unwrap();
        assert_eq!(r.args[1..], ["--", "-once"]);
        assert!(rw(&["---once"]).is_err());
    }

    #[test]
    fn check_subcommand() {
        let r = rw(&["check", "-template", "a.hbs"]).unwrap();
        assert_eq!(r.subcommand, Some(Subcommand::Check));
        assert_eq!(r.args[1..], ["--template=a.hbs"]);
    }
}
