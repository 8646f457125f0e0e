//! Math helpers: `(add A B)` is A + B, and so on (consul-template's piped operand comes first in
//! Go, `B | subtract A` = B − A; here the arguments read left to right). Integers stay integers;
//! a float on either side gives a float.

use super::{spec, Call, HelperError, HelperResult, Spec};
use serde_json::{Number, Value};

pub const HELPERS: &[Spec] = &[
    spec("add", 2, 2, add),
    spec("subtract", 2, 2, subtract),
    spec("multiply", 2, 2, multiply),
    spec("divide", 2, 2, divide),
    spec("modulo", 2, 2, modulo),
    spec("minimum", 2, 2, minimum),
    spec("maximum", 2, 2, maximum),
];

enum Num {
    Int(i64),
    Float(f64),
}

fn num(c: &Call, i: usize) -> Result<Num, HelperError> {
    match c.arg(i) {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(Num::Int(i))
            } else {
                Ok(Num::Float(n.as_f64().unwrap_or_default()))
            }
        }
        other => Err(format!(
            "argument {} must be a number, got {}",
            i + 1,
            super::kind(other)
        )
        .into()),
    }
}

fn float(f: f64) -> HelperResult {
    Number::from_f64(f)
        .map(Value::Number)
        .ok_or_else(|| "result is not a finite number".into())
}

fn apply(c: &Call, int: fn(i64, i64) -> Option<i64>, fl: fn(f64, f64) -> f64) -> HelperResult {
    match (num(c, 0)?, num(c, 1)?) {
        (Num::Int(a), Num::Int(b)) => int(a, b)
            .map(Value::from)
            .ok_or_else(|| "integer overflow".into()),
        (a, b) => {
            let as_f = |n: Num| match n {
                Num::Int(i) => i as f64,
                Num::Float(f) => f,
            };
            float(fl(as_f(a), as_f(b)))
        }
    }
}

fn add(c: &Call) -> HelperResult {
    apply(c, i64::checked_add, |a, b| a + b)
}

fn subtract(c: &Call) -> HelperResult {
    apply(c, i64::checked_sub, |a, b| a - b)
}

fn multiply(c: &Call) -> HelperResult {
    apply(c, i64::checked_mul, |a, b| a * b)
}

fn divide(c: &Call) -> HelperResult {
    let zero = match num(c, 1)? {
        Num::Int(b) => b == 0,
        Num::Float(b) => b == 0.0,
    };
    if zero {
        return Err("division by zero".into());
    }
    apply(c, i64::checked_div, |a, b| a / b)
}

fn modulo(c: &Call) -> HelperResult {
    match (num(c, 0)?, num(c, 1)?) {
        (Num::Int(_), Num::Int(0)) => Err("division by zero".into()),
        (Num::Int(a), Num::Int(b)) => a
            .checked_rem(b)
            .map(Value::from)
            .ok_or_else(|| "integer overflow".into()),
        _ => Err("modulo needs integers".into()),
    }
}

fn minimum(c: &Call) -> HelperResult {
    apply(c, |a, b| Some(a.min(b)), f64::min)
}

fn maximum(c: &Call) -> HelperResult {
    apply(c, |a, b| Some(a.max(b)), f64::max)
}
