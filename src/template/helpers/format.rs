//! Go's `print`, `printf` and `println` (`fmt.Sprint`, `Sprintf`, `Sprintln`) over JSON values:
//! the verbs `%v %s %d %q %x %X %f %F %e %g %t %c %%` with flags (`-+ 0#`), width and precision,
//! and Go's `%!verb(…)` marks for a wrong or missing argument.

use super::{spec, Call, HelperResult, Spec, MANY};
use serde_json::Value;
use std::fmt::Write as _;

pub const HELPERS: &[Spec] = &[
    spec("print", 0, MANY, print),
    spec("printf", 1, MANY, printf),
    spec("println", 0, MANY, println),
];

/// The internal helper a converted Go template prints values with: lists and maps as Go prints
/// them (`[a b]`, `map[k:v]`), anything else as handlebars does (nothing prints empty).
pub const GO_VALUE: &str = "__consul_render_go";

/// `GO_VALUE`'s spec (registered beside the others, never listed as a helper users call).
pub const GO_VALUE_SPEC: Spec = spec(GO_VALUE, 1, 1, go_output);

/// Go's `and` and `or` for converted templates: they give the deciding value, not a bool
/// (`{{or .Name "default"}}` prints the name or the default).
pub const GO_AND: &str = "__consul_render_and";
pub const GO_OR: &str = "__consul_render_or";
pub const GO_AND_SPEC: Spec = spec(GO_AND, 1, MANY, go_and);
pub const GO_OR_SPEC: Spec = spec(GO_OR, 1, MANY, go_or);

/// Go's truth: false, 0, nothing, "" and empty lists and maps are false.
fn truth(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}

/// The first false argument, or the last.
fn go_and(c: &Call) -> HelperResult {
    Ok(c.args
        .iter()
        .find(|v| !truth(v))
        .or(c.args.last())
        .map_or(Value::Null, |v| (*v).clone()))
}

/// The first true argument, or the last.
fn go_or(c: &Call) -> HelperResult {
    Ok(c.args
        .iter()
        .find(|v| truth(v))
        .or(c.args.last())
        .map_or(Value::Null, |v| (*v).clone()))
}

fn go_output(c: &Call) -> HelperResult {
    Ok(match c.arg(0) {
        v @ (Value::Array(_) | Value::Object(_)) => Value::String(go_value(v)),
        v => v.clone(),
    })
}

/// Go's `%v`: strings as they are, lists `[a b]`, maps `map[k:v]`, nothing `<nil>`.
pub fn go_value(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(a) => format!("[{}]", a.iter().map(go_value).collect::<Vec<_>>().join(" ")),
        Value::Object(m) => format!(
            "map[{}]",
            m.iter()
                .map(|(k, v)| format!("{k}:{}", go_value(v)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    }
}

/// `print A B …`: operands side by side, a space between two that are not strings (Go's rule).
fn print(c: &Call) -> HelperResult {
    let mut out = String::new();
    for (i, v) in c.args.iter().enumerate() {
        if i > 0 && !v.is_string() && !c.args[i - 1].is_string() {
            out.push(' ');
        }
        out.push_str(&go_value(v));
    }
    Ok(Value::String(out))
}

/// `println A B …`: spaces between all, a newline at the end.
fn println(c: &Call) -> HelperResult {
    let parts: Vec<String> = c.args.iter().map(|v| go_value(v)).collect();
    Ok(Value::String(format!("{}\n", parts.join(" "))))
}

/// `printf FORMAT A B …`.
fn printf(c: &Call) -> HelperResult {
    let format = c.str(0)?;
    Ok(Value::String(sprintf(format, &c.args[1..])))
}

#[derive(Default)]
struct Spec2 {
    minus: bool,
    plus: bool,
    zero: bool,
    space: bool,
    sharp: bool,
    width: Option<usize>,
    precision: Option<usize>,
}

/// Go's `fmt.Sprintf` over JSON values.
pub fn sprintf(format: &str, args: &[&Value]) -> String {
    let mut out = String::new();
    let mut next = 0;
    let mut chars = format.chars().peekable();
    while let Some(ch) = chars.next() {
        if ch != '%' {
            out.push(ch);
            continue;
        }
        let mut f = Spec2::default();
        while let Some(&flag) = chars.peek() {
            match flag {
                '-' => f.minus = true,
                '+' => f.plus = true,
                '0' => f.zero = true,
                ' ' => f.space = true,
                '#' => f.sharp = true,
                _ => break,
            }
            chars.next();
        }
        let number = |chars: &mut std::iter::Peekable<std::str::Chars>| {
            let mut n: Option<usize> = None;
            while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                n = Some(
                    n.unwrap_or(0)
                        .saturating_mul(10)
                        .saturating_add(d as usize)
                        .min(1 << 16),
                );
                chars.next();
            }
            n
        };
        f.width = number(&mut chars);
        if chars.peek() == Some(&'.') {
            chars.next();
            f.precision = Some(number(&mut chars).unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(next) else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        next += 1;
        out.push_str(&pad(
            &f,
            one(verb, &f, arg),
            matches!(verb, 'd' | 'f' | 'F' | 'e' | 'g' | 'x' | 'X'),
        ));
    }
    if next < args.len() {
        let extra: Vec<String> = args[next..]
            .iter()
            .map(|a| format!("{}={}", go_type(a), go_value(a)))
            .collect();
        let _ = write!(out, "%!(EXTRA {})", extra.join(", "));
    }
    out
}

fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float64",
        Value::Number(_) => "int",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

fn bad(verb: char, v: &Value) -> String {
    format!("%!{verb}({}={})", go_type(v), go_value(v))
}

fn one(verb: char, f: &Spec2, v: &Value) -> String {
    let sign = |neg: bool, s: String| {
        if neg {
            format!("-{s}")
        } else if f.plus {
            format!("+{s}")
        } else if f.space {
            format!(" {s}")
        } else {
            s
        }
    };
    match (verb, v) {
        ('v', _) => go_value(v),
        ('s', Value::String(s)) => match f.precision {
            Some(p) => s.chars().take(p).collect(),
            None => s.clone(),
        },
        ('s', Value::Array(_) | Value::Object(_) | Value::Null) => go_value(v),
        ('q', Value::String(s)) => format!("{s:?}"),
        ('t', Value::Bool(b)) => b.to_string(),
        ('d', Value::Number(n)) if n.as_i64().is_some() || n.as_u64().is_some() => {
            let i = n
                .as_i64()
                .map(i128::from)
                .or(n.as_u64().map(i128::from))
                .unwrap_or(0);
            sign(i < 0, i.unsigned_abs().to_string())
        }
        ('c', Value::Number(n)) => n
            .as_u64()
            .and_then(|u| u32::try_from(u).ok())
            .and_then(char::from_u32)
            .map_or_else(|| bad('c', v), String::from),
        ('x' | 'X', Value::Number(n)) if n.as_i64().is_some() => {
            let i = n.as_i64().unwrap_or(0);
            let h = format!("{:x}", i.unsigned_abs());
            let h = if f.sharp { format!("0x{h}") } else { h };
            let h = if verb == 'X' { h.to_uppercase() } else { h };
            sign(i < 0, h)
        }
        ('x' | 'X', Value::String(s)) => {
            let h: String = s.bytes().map(|b| format!("{b:02x}")).collect();
            if verb == 'X' {
                h.to_uppercase()
            } else {
                h
            }
        }
        ('f' | 'F' | 'e' | 'g', Value::Number(n)) => {
            let x = n.as_f64().unwrap_or(0.0);
            let body = match verb {
                'e' => format_e(x.abs(), f.precision.unwrap_or(6)),
                'g' => match f.precision {
                    Some(p) => format!("{:.*}", p, x.abs()),
                    None => x.abs().to_string(),
                },
                _ => format!("{:.*}", f.precision.unwrap_or(6), x.abs()),
            };
            sign(x.is_sign_negative() && x != 0.0, body)
        }
        _ => bad(verb, v),
    }
}

/// Go's `%e`: `1.234560e+03`.
fn format_e(x: f64, precision: usize) -> String {
    let s = format!("{x:.precision$e}");
    match s.split_once('e') {
        Some((m, e)) => {
            let (sign, digits) = match e.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', e),
            };
            format!("{m}e{sign}{digits:0>2}")
        }
        None => s,
    }
}

/// Width: spaces on the left (or right with `-`), zeros after the sign with `0` for numbers.
fn pad(f: &Spec2, s: String, numeric: bool) -> String {
    let Some(width) = f.width else { return s };
    let len = s.chars().count();
    if len >= width {
        return s;
    }
    let fill = width - len;
    if f.minus {
        format!("{s}{}", " ".repeat(fill))
    } else if f.zero && numeric {
        let (sign, digits) = match s.chars().next() {
            Some(c @ ('-' | '+' | ' ')) => (c.to_string(), s[1..].to_string()),
            _ => (String::new(), s),
        };
        format!("{sign}{}{digits}", "0".repeat(fill))
    } else {
        format!("{}{s}", " ".repeat(fill))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn f(format: &str, args: &[Value]) -> String {
        let refs: Vec<&Value> = args.iter().collect();
        sprintf(format, &refs)
    }

    #[test]
    fn go_and_or_give_the_deciding_value() {
        let call = |args: Vec<Value>| {
            let refs: Vec<&Value> = args.iter().collect();
            let c = Call {
                name: "t",
                args: refs,
                hash: std::collections::BTreeMap::default(),
            };
            (go_or(&c).unwrap(), go_and(&c).unwrap())
        };
        assert_eq!(
            call(vec![json!(""), json!("default")]),
            (json!("default"), json!(""))
        );
        assert_eq!(call(vec![json!("web"), json!(0)]), (json!("web"), json!(0)));
        assert_eq!(call(vec![json!([]), json!({})]), (json!({}), json!([])));
    }

    #[test]
    fn go_verbs() {
        assert_eq!(f("%s:%d", &[json!("web"), json!(80)]), "web:80");
        assert_eq!(
            f("%5d|%-5d|%05d", &[json!(42), json!(42), json!(-42)]),
            "   42|42   |-0042"
        );
        assert_eq!(f("%.2f %f", &[json!(1.23456), json!(1.5)]), "1.23 1.500000");
        assert_eq!(
            f(
                "%q %v %t %%",
                &[json!("a\"b"), json!(["a", "b"]), json!(true)]
            ),
            "\"a\\\"b\" [a b] true %"
        );
        assert_eq!(
            f("%x %X %#x", &[json!(255), json!("hi"), json!(255)]),
            "ff 6869 0xff"
        );
        assert_eq!(f("%e", &[json!(1234.5678)]), "1.234568e+03");
        assert_eq!(f("%d %s", &[json!("x")]), "%!d(string=x) %!s(MISSING)");
        assert_eq!(f("%d", &[json!(1), json!("y")]), "1%!(EXTRA string=y)");
        assert_eq!(f("%v", &[json!({"k": 1})]), "map[k:1]");
    }
}
