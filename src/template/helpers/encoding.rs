//! Parsing and encoding helpers: `parse*`, `toJSON*`, `toYAML`, `toTOML`, base64, hashes.

use super::{spec, Call, HelperError, HelperResult, Spec};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use md5::Md5;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

pub const HELPERS: &[Spec] = &[
    spec("parseBool", 1, 1, parse_bool),
    spec("parseInt", 1, 1, parse_int),
    spec("parseUint", 1, 1, parse_uint),
    spec("parseFloat", 1, 1, parse_float),
    spec("parseJSON", 1, 1, parse_json),
    spec("parseYAML", 1, 1, parse_yaml),
    spec("toJSON", 1, 1, to_json),
    spec("toJSONPretty", 1, 1, to_json_pretty),
    spec("toUnescapedJSON", 1, 1, to_unescaped_json),
    spec("toUnescapedJSONPretty", 1, 1, to_unescaped_json_pretty),
    spec("toYAML", 1, 1, to_yaml),
    spec("toTOML", 1, 1, to_toml),
    spec("base64Encode", 1, 1, base64_encode),
    spec("base64Decode", 1, 1, base64_decode),
    spec("base64URLEncode", 1, 1, base64_url_encode),
    spec("base64URLDecode", 1, 1, base64_url_decode),
    spec("sha256Hex", 1, 1, sha256_hex),
    spec("md5sum", 1, 1, md5sum),
    spec("hmacSHA256Hex", 2, 2, hmac_sha256_hex),
];

/// `""` → false; otherwise Go's `strconv.ParseBool`.
fn parse_bool(c: &Call) -> HelperResult {
    let v = c.text(0)?;
    Ok(Value::Bool(match v.as_str() {
        "" | "0" | "f" | "F" | "FALSE" | "false" | "False" => false,
        "1" | "t" | "T" | "TRUE" | "true" | "True" => true,
        other => return Err(format!("{other:?} is not a boolean").into()),
    }))
}

fn parse_int(c: &Call) -> HelperResult {
    let v = c.text(0)?;
    if v.is_empty() {
        return Ok(Value::from(0));
    }
    v.parse::<i64>()
        .map(Value::from)
        .map_err(|_| format!("{v:?} is not an integer"))
        .map_err(HelperError::from)
}

fn parse_uint(c: &Call) -> HelperResult {
    let v = c.text(0)?;
    if v.is_empty() {
        return Ok(Value::from(0));
    }
    v.parse::<u64>()
        .map(Value::from)
        .map_err(|_| format!("{v:?} is not an unsigned integer"))
        .map_err(HelperError::from)
}

fn parse_float(c: &Call) -> HelperResult {
    let v = c.text(0)?;
    if v.is_empty() {
        return Ok(Value::from(0.0));
    }
    let f: f64 = v.parse().map_err(|_| format!("{v:?} is not a number"))?;
    serde_json::Number::from_f64(f)
        .map(Value::Number)
        .ok_or_else(|| format!("{v:?} is not a finite number"))
        .map_err(HelperError::from)
}

fn parse_json(c: &Call) -> HelperResult {
    let v = c.text(0)?;
    if v.is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    serde_json::from_str(&v)
        .map_err(|e| format!("invalid JSON: {e}"))
        .map_err(HelperError::from)
}

fn parse_yaml(c: &Call) -> HelperResult {
    let v = c.text(0)?;
    if v.is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    serde_norway::from_str(&v)
        .map_err(|e| format!("invalid YAML: {e}"))
        .map_err(HelperError::from)
}

/// Go's encoding/json escapes `<`, `>`, `&`, U+2028 and U+2029 inside strings.
fn go_escape(json: String) -> String {
    json.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

fn compact(v: &Value) -> Result<String, HelperError> {
    serde_json::to_string(v)
        .map_err(|e| e.to_string())
        .map_err(HelperError::from)
}

fn pretty(v: &Value) -> Result<String, HelperError> {
    serde_json::to_string_pretty(v)
        .map_err(|e| e.to_string())
        .map_err(HelperError::from)
}

/// Encoders recurse: refuse a value nested past `limits::VALUE_DEPTH` first.
fn shallow(v: &Value) -> Result<(), HelperError> {
    if crate::limits::depth(v, crate::limits::VALUE_DEPTH) > crate::limits::VALUE_DEPTH {
        return Err(format!(
            "the value nests deeper than {} levels",
            crate::limits::VALUE_DEPTH
        )
        .into());
    }
    Ok(())
}

fn to_json(c: &Call) -> HelperResult {
    shallow(c.arg(0))?;
    Ok(Value::String(go_escape(compact(c.arg(0))?)))
}

fn to_json_pretty(c: &Call) -> HelperResult {
    shallow(c.arg(0))?;
    Ok(Value::String(go_escape(pretty(c.arg(0))?)))
}

fn to_unescaped_json(c: &Call) -> HelperResult {
    shallow(c.arg(0))?;
    Ok(Value::String(compact(c.arg(0))?))
}

fn to_unescaped_json_pretty(c: &Call) -> HelperResult {
    shallow(c.arg(0))?;
    Ok(Value::String(pretty(c.arg(0))?))
}

fn to_yaml(c: &Call) -> HelperResult {
    shallow(c.arg(0))?;
    let y = serde_norway::to_string(c.arg(0)).map_err(|e| e.to_string())?;
    Ok(Value::String(y.trim_end().to_string()))
}

fn to_toml(c: &Call) -> HelperResult {
    shallow(c.arg(0))?;
    let t = toml::to_string(c.arg(0)).map_err(|e| format!("cannot encode as TOML: {e}"))?;
    Ok(Value::String(t.trim_end().to_string()))
}

fn base64_encode(c: &Call) -> HelperResult {
    Ok(Value::String(
        base64::engine::general_purpose::STANDARD.encode(c.text(0)?),
    ))
}

fn decode(engine: &base64::engine::GeneralPurpose, input: &str) -> HelperResult {
    let bytes = engine
        .decode(input)
        .map_err(|e| format!("invalid base64: {e}"))?;
    String::from_utf8(bytes).map(Value::String).map_err(|e| {
        format!(
            "the decoded bytes are not UTF-8 text (invalid byte at offset {}); templates render text only",
            e.utf8_error().valid_up_to()
        )
    }).map_err(HelperError::from)
}

fn base64_decode(c: &Call) -> HelperResult {
    decode(&base64::engine::general_purpose::STANDARD, &c.text(0)?)
}

fn base64_url_encode(c: &Call) -> HelperResult {
    Ok(Value::String(
        base64::engine::general_purpose::URL_SAFE.encode(c.text(0)?),
    ))
}

fn base64_url_decode(c: &Call) -> HelperResult {
    decode(&base64::engine::general_purpose::URL_SAFE, &c.text(0)?)
}

fn sha256_hex(c: &Call) -> HelperResult {
    Ok(Value::String(hex::encode(Sha256::digest(
        c.text(0)?.as_bytes(),
    ))))
}

fn md5sum(c: &Call) -> HelperResult {
    Ok(Value::String(hex::encode(Md5::digest(
        c.text(0)?.as_bytes(),
    ))))
}

/// `hmacSHA256Hex MESSAGE KEY` (Go: `KEY | hmacSHA256Hex MESSAGE`).
fn hmac_sha256_hex(c: &Call) -> HelperResult {
    let (message, key) = (c.text(0)?, c.text(1)?);
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).map_err(|e| e.to_string())?;
    mac.update(message.as_bytes());
    Ok(Value::String(hex::encode(mac.finalize().into_bytes())))
}
