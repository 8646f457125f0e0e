//! Go's `time.ParseDuration` grammar (`250ms`, `1m30s`, `1.5h`, bare `0`), and `min[:max]` waits.

use std::time::Duration;

/// Why a duration or a wait was refused; the text names the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration")]
    Empty,
    #[error("negative duration {0:?}")]
    Negative(String),
    #[error("missing unit in duration {0:?}")]
    MissingUnit(String),
    #[error("unknown unit {unit:?} in duration {input:?}")]
    UnknownUnit { unit: String, input: String },
    #[error("invalid duration {0:?}")]
    Invalid(String),
    #[error("invalid wait {0:?}: expected MIN[:MAX]")]
    WaitShape(String),
    #[error("invalid wait {0:?}: min is greater than max")]
    WaitOrder(String),
}

/// Parses a Go duration. A bare number other than `0` is an error, as in Go; negative
/// durations are rejected because no setting of ours means anything with one.
pub fn parse(input: &str) -> Result<Duration, DurationError> {
    let s = input.trim();
    if s == "0" || s == "+0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    if s.starts_with('-') {
        return Err(DurationError::Negative(input.into()));
    }
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| DurationError::MissingUnit(input.into()))?;
        if num_len == 0 {
            return Err(DurationError::Invalid(input.into()));
        }
        let number: f64 = rest[..num_len]
            .parse()
            .map_err(|_| DurationError::Invalid(input.into()))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per_unit = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(DurationError::MissingUnit(input.into())),
            other => {
                return Err(DurationError::UnknownUnit {
                    unit: other.into(),
                    input: input.into(),
                })
            }
        };
        total += number * nanos_per_unit;
        rest = &rest[unit_len..];
    }
    if !total.is_finite() || total > u64::MAX as f64 {
        return Err(DurationError::Invalid(input.into()));
    }
    Ok(Duration::from_nanos(total.round() as u64))
}

/// Formats a duration exactly as Go would accept it (`60s`, `1500ms`, `250us`), for Consul's
/// `wait=` parameter and messages. (It once printed `1us` as `0ms`, found by the fuzz target.)
pub fn format(d: Duration) -> String {
    let nanos = d.subsec_nanos();
    if nanos == 0 {
        format!("{}s", d.as_secs())
    } else if nanos % 1_000_000 == 0 {
        format!("{}ms", d.as_millis())
    } else if nanos % 1_000 == 0 {
        format!("{}us", d.as_micros())
    } else {
        format!("{}ns", d.as_nanos())
    }
}

/// Quiescence: `min[:max]`, max defaulting to 4 x min.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wait {
    pub min: Duration,
    pub max: Duration,
}

impl Wait {
    pub fn parse(s: &str) -> Result<Wait, DurationError> {
        let parts: Vec<&str> = s.split(':').collect();
        let (min, max) = match parts.as_slice() {
            [min] => {
                let min = parse(min)?;
                (min, min * 4)
            }
            [min, max] => (parse(min)?, parse(max)?),
            _ => return Err(DurationError::WaitShape(s.into())),
        };
        if min > max {
            return Err(DurationError::WaitOrder(s.into()));
        }
        Ok(Wait { min, max })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("100us").unwrap(), Duration::from_micros(100));
        assert_eq!(parse("0").unwrap(), Duration::ZERO);
        assert!(parse("30")
            .unwrap_err()
            .to_string()
            .contains("missing unit"));
        assert!(parse("2d")
            .unwrap_err()
            .to_string()
            .contains("unknown unit"));
        assert!(parse("").is_err());
        assert!(parse("-1s").is_err());
        assert!(parse("s").is_err());
    }

    #[test]
    fn waits() {
        let w = Wait::parse("5s").unwrap();
        assert_eq!(
            (w.min, w.max),
            (Duration::from_secs(5), Duration::from_secs(20))
        );
        let w = Wait::parse("2s:10s").unwrap();
        assert_eq!(
            (w.min, w.max),
            (Duration::from_secs(2), Duration::from_secs(10))
        );
        assert!(Wait::parse("10s:2s")
            .unwrap_err()
            .to_string()
            .contains("min is greater"));
        assert!(Wait::parse("1s:2s:3s").is_err());
    }

    #[test]
    fn formats_for_consul() {
        assert_eq!(format(Duration::from_secs(60)), "60s");
        assert_eq!(format(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format(Duration::from_micros(1)), "1us");
        assert_eq!(format(Duration::from_nanos(1_000_001)), "1000001ns");
    }
}
