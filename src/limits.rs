//! Every hard limit in one place: what a template, a data file, a config file or a Consul answer
//! may hold before consul-render refuses it with an error instead of exhausting the stack or
//! memory. Each is listed in the README ("Limits"); none is reachable by a sane configuration.

/// Nested blocks (`{{#if}}`, `{{#each}}`, `{{#with}}`, inline partials…) in one template.
pub const TEMPLATE_NESTING: usize = 100;
/// Nested subexpressions (`(f (g (h …)))`) in one `{{…}}`.
pub const SUBEXPRESSION_NESTING: usize = 32;
/// Partials expanding partials at render time (recursion through `{{> name}}`).
pub const PARTIAL_DEPTH: usize = 64;
/// Stack a partial must leave unused before it may include another one (partials and the
/// blocks between them recurse in handlebars' renderer).
pub const STACK_RESERVE: usize = 1 << 20;
/// Stack of the threads that render in watch mode (the main thread renders in once mode).
pub const RENDER_STACK: usize = 16 << 20;
/// Segments of a key that `explode`/`explodeMap` turn into nested maps, and the depth of a
/// value that `toJSON`/`toYAML`/`toTOML` encode.
pub const VALUE_DEPTH: usize = 128;
/// Bytes one helper may produce (`indent`, `join`, `replaceAll`…): refused before allocating.
pub const HELPER_RESULT_BYTES: usize = 64 << 20;
/// Bytes one rendered template may produce.
pub const OUTPUT_BYTES: usize = 128 << 20;
/// Bytes `file` reads from one file.
pub const FILE_BYTES: u64 = 64 << 20;
/// Bytes read from a template, config, data, token or CA file, or a destination being compared.
pub const INPUT_FILE_BYTES: u64 = 1 << 30;
/// Nested blocks and lists in an HCL config file.
pub const HCL_NESTING: usize = 64;
/// Default for `-consul-max-response-bytes`: the body of one Consul answer.
pub const RESPONSE_BYTES: u64 = 64 << 20;

/// A helper result over `HELPER_RESULT_BYTES`, refused before it is made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{what} would be {bytes} bytes, over the limit of {} MiB for one helper result",
    HELPER_RESULT_BYTES >> 20
)]
pub struct TooLarge {
    pub what: &'static str,
    pub bytes: u128,
}

/// `Err` naming `what` when `bytes` is over `HELPER_RESULT_BYTES`.
pub fn helper_result(what: &'static str, bytes: u128) -> Result<(), TooLarge> {
    if bytes > HELPER_RESULT_BYTES as u128 {
        Err(TooLarge { what, bytes })
    } else {
        Ok(())
    }
}

/// How deeply `v` nests (a scalar is 0), found without recursion; stops counting past `limit`.
pub fn depth(v: &serde_json::Value, limit: usize) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(v, 0usize)];
    while let Some((v, d)) = stack.pop() {
        deepest = deepest.max(d);
        if deepest > limit {
            break;
        }
        match v {
            serde_json::Value::Array(a) => stack.extend(a.iter().map(|x| (x, d + 1))),
            serde_json::Value::Object(m) => stack.extend(m.values().map(|x| (x, d + 1))),
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn depth_counts_containers() {
        assert_eq!(depth(&json!("x"), 10), 0);
        assert_eq!(depth(&json!({"a": [1, {"b": 2}]}), 10), 3);
        assert!(depth(&json!([[[[[1]]]]]), 2) > 2);
    }

    #[test]
    fn helper_results_are_capped() {
        assert!(helper_result("x", 10).is_ok());
        assert!(helper_result("indent", u128::from(u64::MAX))
            .unwrap_err()
            .to_string()
            .contains("over the limit of 64 MiB"));
    }
}
