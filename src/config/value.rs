//! Typed setting values, parsed once wherever they come from (a flag through clap, a variable,
//! a config file through serde): Go durations, waits, signals, log levels and formats, template
//! syntax, file modes, `K=V` pairs and secrets.

use super::duration::{self, DurationError, Wait};
use nix::sys::signal::Signal;
use serde::{Deserialize, Deserializer};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Why one value was refused (the caller adds where it came from).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error(transparent)]
    Duration(#[from] DurationError),
    #[error("unknown signal {0:?}: use a full name such as SIGHUP")]
    SignalPrefix(String),
    #[error("unknown signal {0:?}")]
    Signal(String),
    #[error("unknown level {0:?} (trace, debug, info, warn, err)")]
    LogLevel(String),
    #[error("unknown log format {0:?} (text or json)")]
    LogFormat(String),
    #[error("{0:?} is not a template syntax (go, handlebars)")]
    Syntax(String),
    #[error("perms {0:?} is not an octal mode")]
    ModeText(String),
    #[error("perms {0:o} is not a file mode")]
    ModeRange(u32),
    #[error("{0:?} is not K=V")]
    EnvPair(String),
    #[error("{0:?} is not a boolean")]
    Bool(String),
    /// A value that is well-formed but not allowed here; the text says why.
    #[error("{0}")]
    Refused(String),
}

/// Implements `Deserialize` through `FromStr`, so a config file's value gets the same parser
/// (and the same message) as the flag.
macro_rules! deserialize_from_str {
    ($($t:ty),* $(,)?) => {$(
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}

deserialize_from_str!(GoDuration, SignalName, LogLevel, LogFormat, Syntax, EnvPair);

/// A Go duration (`250ms`, `1m30s`, `0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoDuration(pub Duration);

impl FromStr for GoDuration {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        Ok(GoDuration(duration::parse(s)?))
    }
}

impl FromStr for Wait {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        Ok(Wait::parse(s)?)
    }
}

/// `wait = "2s:10s"` or `wait { min = "2s" max = "10s" }`.
impl<'de> Deserialize<'de> for Wait {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Shape {
            Text(String),
            Block { min: String, max: Option<String> },
        }
        let spec = match Shape::deserialize(d)? {
            Shape::Text(s) => s,
            Shape::Block {
                min,
                max: Some(max),
            } => format!("{min}:{max}"),
            Shape::Block { min, max: None } => min,
        };
        Wait::parse(&spec).map_err(serde::de::Error::custom)
    }
}

/// A signal by its full name (`SIGHUP`, any case); `""` means none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignalName(pub Option<Signal>);

impl FromStr for SignalName {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        if s.is_empty() {
            return Ok(SignalName(None));
        }
        let upper = s.to_ascii_uppercase();
        if !upper.starts_with("SIG") {
            return Err(ValueError::SignalPrefix(s.into()));
        }
        Signal::from_str(&upper)
            .map(|sig| SignalName(Some(sig)))
            .map_err(|_| ValueError::Signal(s.into()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Err,
}

impl FromStr for LogLevel {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        match s.to_ascii_lowercase().as_str() {
            "trace" => Ok(LogLevel::Trace),
            "debug" => Ok(LogLevel::Debug),
            "info" => Ok(LogLevel::Info),
            "warn" | "warning" => Ok(LogLevel::Warn),
            "err" | "error" => Ok(LogLevel::Err),
            _ => Err(ValueError::LogLevel(s.into())),
        }
    }
}

impl LogLevel {
    /// The `tracing` filter directive for this level.
    pub fn directive(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Err => "error",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl FromStr for LogFormat {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(ValueError::LogFormat(other.into())),
        }
    }
}

/// A template's syntax: Go's (converted when loaded) or handlebars.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    Go,
    Handlebars,
}

impl FromStr for Syntax {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "go" | "gotmpl" | "go-template" => Ok(Syntax::Go),
            "handlebars" | "hbs" => Ok(Syntax::Handlebars),
            other => Err(ValueError::Syntax(other.into())),
        }
    }
}

/// A file mode: `perms = 0600` (HCL1's octal number) or `perms = "0600"` (octal text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode(pub u32);

impl Mode {
    fn checked(mode: u32) -> Result<Mode, ValueError> {
        if mode > 0o7777 {
            return Err(ValueError::ModeRange(mode));
        }
        Ok(Mode(mode))
    }
}

impl FromStr for Mode {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        let mode = u32::from_str_radix(s.trim(), 8).map_err(|_| ValueError::ModeText(s.into()))?;
        Mode::checked(mode)
    }
}

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Shape {
            Number(u32),
            Text(String),
        }
        match Shape::deserialize(d)? {
            Shape::Number(n) => Mode::checked(n),
            Shape::Text(s) => s.parse(),
        }
        .map_err(serde::de::Error::custom)
    }
}

/// One `K=V` for a command's environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvPair(pub String);

impl FromStr for EnvPair {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        if !s.contains('=') {
            return Err(ValueError::EnvPair(s.into()));
        }
        Ok(EnvPair(s.into()))
    }
}

/// A command as consul-template runs it, decided once when the settings are read: one string
/// with whitespace runs under `sh -c`; one word, or a list (`["nginx", "-s", "reload"]`),
/// runs directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Shell(String),
    /// Program and arguments; never empty.
    Exec(Vec<String>),
}

impl Command {
    /// consul-template's command list; `None` when it is empty or blank.
    pub fn from_list(mut argv: Vec<String>) -> Option<Command> {
        match argv.as_slice() {
            [] => None,
            [one] if one.trim().is_empty() => None,
            [one] if one.contains(char::is_whitespace) => Some(Command::Shell(argv.remove(0))),
            _ => Some(Command::Exec(argv)),
        }
    }

    /// How logs and errors show it: the shell text, or the words joined.
    pub fn display(&self) -> String {
        match self {
            Command::Shell(s) => s.clone(),
            Command::Exec(argv) => argv.join(" "),
        }
    }
}

/// Go's `strconv.ParseBool`, which consul-template uses for boolean variables.
pub fn go_bool(v: &str) -> Result<bool, ValueError> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(ValueError::Bool(v.into())),
    }
}

/// A secret string: never printed, not even by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals() {
        let sig = |s: &str| s.parse::<SignalName>().map(|n| n.0);
        assert_eq!(sig("sigterm").unwrap(), Some(Signal::SIGTERM));
        assert_eq!(sig("").unwrap(), None);
        assert!(sig("TERM").unwrap_err().to_string().contains("SIGHUP"));
        assert!(sig("SIGBOGUS").is_err());
    }

    #[test]
    fn a_file_value_gets_the_flags_parser() {
        #[derive(Deserialize)]
        struct T {
            d: GoDuration,
            m: Mode,
            w: Wait,
        }
        let t: T =
            serde_json::from_str(r#"{"d": "1m30s", "m": "0640", "w": {"min": "1s"}}"#).unwrap();
        assert_eq!(t.d.0, Duration::from_secs(90));
        assert_eq!(t.m.0, 0o640);
        assert_eq!(t.w.max, Duration::from_secs(4));
        let e = serde_json::from_str::<T>(r#"{"d": "30", "m": 420, "w": "1s"}"#)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("missing unit"), "{e}");
        assert!(serde_json::from_str::<Mode>("65535").is_err());
        assert!("x".parse::<EnvPair>().is_err());
        assert!("rw".parse::<Mode>().is_err());
    }
}
