//! The `-template "src[:dst[:command]]"` value, split exactly as consul-template splits it.

use super::value::ValueError;
use regex::Regex;
use std::str::FromStr;
use std::sync::LazyLock;

/// What one `-template` flag names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateSpec {
    pub source: String,
    pub destination: Option<String>,
    pub command: Option<String>,
}

/// consul-template's `([a-zA-Z]:)?([^:]+)`: each match is one part, so a part may start with a
/// drive letter; a fourth and later parts are joined back with `:` into the command.
pub fn parse(value: &str) -> Result<TemplateSpec, ValueError> {
    static PART: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"([a-zA-Z]:)?([^:]+)").expect("static regex"));
    if value.trim().is_empty() {
        return Err(ValueError::Refused(format!("{value:?} cannot be empty")));
    }
    let parts: Vec<&str> = PART.find_iter(value).map(|m| m.as_str()).collect();
    let mut parts = parts.into_iter();
    let source = parts
        .next()
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| ValueError::Refused(format!("{value:?} cannot be empty")))?;
    let destination = parts.next().map(str::to_string);
    let rest: Vec<&str> = parts.collect();
    let command = (!rest.is_empty()).then(|| rest.join(":"));
    Ok(TemplateSpec {
        source: source.to_string(),
        destination,
        command,
    })
}

impl FromStr for TemplateSpec {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(s: &str, d: Option<&str>, c: Option<&str>) -> TemplateSpec {
        TemplateSpec {
            source: s.into(),
            destination: d.map(Into::into),
            command: c.map(Into::into),
        }
    }

    #[test]
    fn consul_template_cases() {
        for bad in ["", " ", ":", ":::"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            parse("/tmp/a.txt:/tmp/b.txt:command").unwrap(),
            spec("/tmp/a.txt", Some("/tmp/b.txt"), Some("command"))
        );
        assert_eq!(parse("/tmp/a.txt").unwrap(), spec("/tmp/a.txt", None, None));
        assert_eq!(parse(r"z:\foo").unwrap(), spec(r"z:\foo", None, None));
        assert_eq!(
            parse(r"C:\abc\123:D:\xyz\789:command").unwrap(),
            spec(r"C:\abc\123", Some(r"D:\xyz\789"), Some("command"))
        );
        assert_eq!(
            parse(r"C:\abc\123:D:\xyz\789:sub:command").unwrap(),
            spec(r"C:\abc\123", Some(r"D:\xyz\789"), Some("sub:command"))
        );
        assert_eq!(
            parse("in:out:echo a:b").unwrap(),
            spec("in", Some("out"), Some("echo a:b"))
        );
        assert_eq!(
            parse("in.hbs:/etc/nginx/nginx.conf:nginx -s reload").unwrap(),
            spec(
                "in.hbs",
                Some("/etc/nginx/nginx.conf"),
                Some("nginx -s reload")
            )
        );
    }
}
