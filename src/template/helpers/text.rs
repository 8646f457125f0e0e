//! String helpers: `join`, `split`, `splitToMap`, `trim*`, case, `replaceAll`, regexes, `indent`.

use super::{spec, to_text, Call, HelperError, HelperResult, Spec};
use crate::limits;
use regex::Regex;
use serde_json::{Map, Value};
use std::rc::Rc;

pub const HELPERS: &[Spec] = &[
    spec("join", 2, 2, join),
    spec("split", 2, 2, split),
    spec("splitToMap", 3, 3, split_to_map),
    spec("trim", 2, 2, trim),
    spec("trimPrefix", 2, 2, trim_prefix),
    spec("trimSuffix", 2, 2, trim_suffix),
    spec("trimSpace", 1, 1, trim_space),
    spec("toLower", 1, 1, to_lower),
    spec("toUpper", 1, 1, to_upper),
    spec("toTitle", 1, 1, to_title),
    spec("replaceAll", 3, 3, replace_all),
    spec("regexMatch", 2, 2, regex_match),
    spec("regexReplaceAll", 3, 3, regex_replace_all),
    spec("indent", 2, 2, indent),
];

fn s(v: String) -> HelperResult {
    Ok(Value::String(v))
}

/// `join SEP LIST`.
fn join(c: &Call) -> HelperResult {
    let sep = c.str(0)?;
    let items: Vec<String> = c.list(1)?.iter().map(to_text).collect();
    let seps = items.len().saturating_sub(1) as u128 * sep.len() as u128;
    let total: u128 = items.iter().map(|i| i.len() as u128).sum::<u128>() + seps;
    limits::helper_result("the joined string", total)?;
    s(items.join(sep))
}

/// `split SEP S`: the input is trimmed first; an empty input gives an empty list.
fn split(c: &Call) -> HelperResult {
    let sep = c.str(0)?;
    let input = c.text(1)?;
    let input = input.trim();
    if input.is_empty() {
        return Ok(Value::Array(Vec::new()));
    }
    Ok(Value::Array(
        input
            .split(sep)
            .map(|p| Value::String(p.to_string()))
            .collect(),
    ))
}

/// `splitToMap SEP KVSEP S`: `"a:1,b:2"` with `","` and `":"` → `{a: "1", b: "2"}`.
fn split_to_map(c: &Call) -> HelperResult {
    let (sep, kv_sep) = (c.str(0)?, c.str(1)?);
    let input = c.text(2)?;
    let mut m = Map::new();
    if input.is_empty() {
        return Ok(Value::Object(m));
    }
    for item in input.split(sep) {
        if let Some((k, v)) = item.split_once(kv_sep) {
            m.insert(k.to_string(), Value::String(v.to_string()));
        }
    }
    Ok(Value::Object(m))
}

/// `trim CUTSET S`: Go's `strings.Trim`.
fn trim(c: &Call) -> HelperResult {
    let cutset: Vec<char> = c.str(0)?.chars().collect();
    s(c.text(1)?
        .trim_matches(|ch| cutset.contains(&ch))
        .to_string())
}

fn trim_prefix(c: &Call) -> HelperResult {
    let prefix = c.str(0)?;
    let input = c.text(1)?;
    s(input.strip_prefix(prefix).unwrap_or(&input).to_string())
}

fn trim_suffix(c: &Call) -> HelperResult {
    let suffix = c.str(0)?;
    let input = c.text(1)?;
    s(input.strip_suffix(suffix).unwrap_or(&input).to_string())
}

fn trim_space(c: &Call) -> HelperResult {
    s(c.text(0)?.trim().to_string())
}

fn to_lower(c: &Call) -> HelperResult {
    s(c.text(0)?.to_lowercase())
}

fn to_upper(c: &Call) -> HelperResult {
    s(c.text(0)?.to_uppercase())
}

/// Go's `strings.Title`: the first letter of each word upper-cased, the rest kept.
fn to_title(c: &Call) -> HelperResult {
    let mut out = String::new();
    let mut prev_sep = true;
    for ch in c.text(0)?.chars() {
        if prev_sep {
            out.extend(ch.to_uppercase());
        } else {
            out.push(ch);
        }
        prev_sep = !(ch.is_alphanumeric() || ch == '_' || ch == '\'');
    }
    s(out)
}

/// `replaceAll FROM TO S`.
fn replace_all(c: &Call) -> HelperResult {
    let (from, to) = (c.str(0)?, c.str(1)?);
    let input = c.text(2)?;
    if to.len() > from.len() {
        let count = if from.is_empty() {
            input.chars().count() + 1
        } else {
            input.matches(from).count()
        };
        let grows = count as u128 * (to.len() - from.len()) as u128;
        limits::helper_result("the replaced string", input.len() as u128 + grows)?;
    }
    s(input.replace(from, to))
}

/// Compiled regexes by pattern, per thread: a template calls `regexReplaceAll` with the same
/// pattern once per service, and compiling costs more than matching. At most `REGEX_CACHE`
/// patterns are kept (then the cache starts over), so templates that build patterns from data
/// cannot grow it.
const REGEX_CACHE: usize = 64;

/// A compiled expression, shared, not cloned: a clone of a `Regex` starts with an empty pool of
/// search caches, which every match would then build again.
fn compile(re: &str) -> Result<Rc<Regex>, HelperError> {
    thread_local! {
        static CACHE: std::cell::RefCell<std::collections::HashMap<String, Rc<Regex>>> =
            std::cell::RefCell::default();
    }
    if let Some(hit) = CACHE.with(|c| c.borrow().get(re).cloned()) {
        return Ok(hit);
    }
    let compiled = Regex::new(re)
        .map(Rc::new)
        .map_err(|e| format!("invalid regular expression {re:?}: {e}"))
        .map_err(HelperError::from)?;
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() >= REGEX_CACHE {
            c.clear();
        }
        c.insert(re.to_string(), compiled.clone());
    });
    Ok(compiled)
}

/// `regexMatch RE S`.
fn regex_match(c: &Call) -> HelperResult {
    Ok(Value::Bool(compile(c.str(0)?)?.is_match(&c.text(1)?)))
}

/// `regexReplaceAll RE REPL S`: `$1`, `${name}` refer to groups.
fn regex_replace_all(c: &Call) -> HelperResult {
    let re = compile(c.str(0)?)?;
    let repl = c.str(1)?;
    let input = c.text(2)?;
    // Expanded match by match, so a result past the limit is refused before it is all built.
    let mut out = String::new();
    let mut last = 0;
    for caps in re.captures_iter(&input) {
        let Some(m) = caps.get(0) else { continue };
        out.push_str(&input[last..m.start()]);
        caps.expand(repl, &mut out);
        last = m.end();
        limits::helper_result("the replaced string", out.len() as u128)?;
    }
    out.push_str(&input[last..]);
    s(out)
}

/// `indent N S`: N spaces before every non-empty line.
fn indent(c: &Call) -> HelperResult {
    let n = c.int(0)?;
    if n < 0 {
        return Err("indent value must be a positive integer".into());
    }
    let text = c.text(1)?;
    let starts = text.split('\n').filter(|l| !l.is_empty()).count() as u128;
    limits::helper_result(
        "the indented string",
        text.len() as u128 + starts * n as u128,
    )?;
    let prefix = " ".repeat(n as usize);
    let mut out = String::new();
    let mut at_line_start = true;
    for ch in text.chars() {
        if at_line_start && ch != '\n' {
            out.push_str(&prefix);
        }
        out.push(ch);
        at_line_start = ch == '\n';
    }
    s(out)
}
