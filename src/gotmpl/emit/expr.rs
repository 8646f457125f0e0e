//! Pipelines, commands and operands as handlebars expressions; Go functions mapped onto ours.

use super::*;

impl Emitter {
    pub(super) fn pipeline(&mut self, p: &Pipeline, pos: Pos) -> Result<Expr, ConvertError> {
        let mut value: Option<Expr> = None;
        for cmd in &p.cmds {
            let piped = value.take().map(Expr::param);
            value = Some(self.command(cmd, piped, pos)?);
        }
        value.ok_or_else(|| ConvertError::at(pos.0, pos.1, "empty pipeline".into()))
    }

    pub(super) fn command(
        &mut self,
        cmd: &[Arg],
        piped: Option<String>,
        pos: Pos,
    ) -> Result<Expr, ConvertError> {
        let err = |m: Reason| ConvertError::at(pos.0, pos.1, m.0);
        match &cmd[0] {
            Arg::Func(name) => {
                let mut args: Vec<String> = cmd[1..]
                    .iter()
                    .map(|a| self.operand(a, pos).map(Expr::param))
                    .collect::<Result<_, _>>()?;
                args.extend(piped);
                function(name, args).map_err(err)
            }
            // `.Tags.Contains "x"`: a method of consul-template's values.
            Arg::Field(f) | Arg::Var(_, f) if cmd.len() > 1 || piped.is_some() => {
                let method = f
                    .last()
                    .and_then(|m| METHODS.iter().find(|(go, _)| go == m));
                let Some((_, helper)) = method else {
                    return Err(err(format!("{} is not a function: only functions and consul-template's methods (Contains…) take arguments", f.join(".")).into()));
                };
                let receiver = match &cmd[0] {
                    Arg::Field(f) => Arg::Field(f[..f.len() - 1].to_vec()),
                    Arg::Var(v, f) => Arg::Var(v.clone(), f[..f.len() - 1].to_vec()),
                    _ => unreachable!("matched above"),
                };
                let mut args: Vec<String> = cmd[1..]
                    .iter()
                    .map(|a| self.operand(a, pos).map(Expr::param))
                    .collect::<Result<_, _>>()?;
                args.extend(piped);
                args.push(self.operand(&receiver, pos)?.param());
                Ok(Expr::Call(format!("{helper} {}", args.join(" "))))
            }
            _ if cmd.len() > 1 || piped.is_some() => Err(err(
                "only a function can take arguments or a piped value".into(),
            )),
            a => self.operand(a, pos),
        }
    }

    pub(super) fn operand(&mut self, a: &Arg, pos: Pos) -> Result<Expr, ConvertError> {
        Ok(match a {
            Arg::Dot => Expr::Plain("this".into()),
            Arg::Field(f) => Expr::Plain(f.join(".")),
            Arg::Var(name, f) if name.is_empty() => {
                return Err(ConvertError::at(
                    pos.0,
                    pos.1,
                    format!(
                        "$ (the top-level data) is nothing in consul-template{}",
                        if f.is_empty() {
                            String::new()
                        } else {
                            format!(": ${}.{} has no value", "", f.join("."))
                        }
                    ),
                ))
            }
            Arg::Var(name, f) => match self.var(name, pos)? {
                Var::Param(p) | Var::Index(p) => Expr::Plain(
                    std::iter::once(p)
                        .chain(f.iter().cloned())
                        .collect::<Vec<_>>()
                        .join("."),
                ),
                Var::Inline(text, depth) => {
                    if depth != self.depth && text_uses_dot(&text) {
                        return Err(ConvertError::at(pos.0, pos.1, format!("${name} depends on . and is used inside a block that changes .: use a range or with variable ($x := …) or compute it where it is used")));
                    }
                    if f.is_empty() {
                        Expr::Plain(text)
                    } else {
                        let mut e = text;
                        for field in f {
                            e = format!("(lookup {e} \"{field}\")");
                        }
                        Expr::Plain(e)
                    }
                }
            },
            Arg::Str(s) => Expr::Plain(serde_json::to_string(s).unwrap_or_default()),
            Arg::Num(n) => Expr::Plain(n.clone()),
            Arg::Bool(b) => Expr::Plain(b.to_string()),
            Arg::Nil => Expr::Plain("null".into()),
            Arg::Func(name) => {
                function(name, Vec::new()).map_err(|m| ConvertError::at(pos.0, pos.1, m.0))?
            }
            Arg::Sub(p) => Expr::Plain(self.pipeline(p, pos)?.param()),
        })
    }
}

/// Whether converted text reads the current context (a bare path or `this`).
pub(super) fn text_uses_dot(text: &str) -> bool {
    // Conservative: any identifier-looking token that is not a literal, a helper call's name or
    // a string. Strings are skipped.
    let mut in_str = false;
    let mut prev = ' ';
    let mut token = String::new();
    let mut first_in_call = false;
    for c in text.chars().chain(std::iter::once(' ')) {
        if in_str {
            if c == '"' && prev != '\\' {
                in_str = false;
            }
            prev = c;
            continue;
        }
        if c == '"' {
            in_str = true;
        } else if c.is_alphanumeric() || c == '_' || c == '.' || c == '@' {
            token.push(c);
        } else {
            if !token.is_empty() {
                let literal = token.parse::<f64>().is_ok()
                    || matches!(token.as_str(), "true" | "false" | "null");
                if !literal && !first_in_call {
                    return true;
                }
                first_in_call = false;
            }
            token.clear();
            if c == '(' {
                first_in_call = true;
            }
        }
        prev = c;
    }
    false
}

/// A Go function call as ours: Go's built-ins mapped, consul-template's by name (math in the
/// order a reader expects: Go's `subtract 2 5` is 5 − 2).
pub(super) fn function(name: &str, mut args: Vec<String>) -> Result<Expr, Reason> {
    let call = |n: &str, a: &[String]| {
        Expr::Call(if a.is_empty() {
            n.to_string()
        } else {
            format!("{n} {}", a.join(" "))
        })
    };
    Ok(match name {
        "eq" if args.len() > 2 => {
            let first = args.remove(0);
            let tests: Vec<String> = args.iter().map(|a| format!("(eq {first} {a})")).collect();
            Expr::Call(format!(
                "{} {}",
                crate::template::helpers::format::GO_OR,
                tests.join(" ")
            ))
        }
        "and" => call(crate::template::helpers::format::GO_AND, &args),
        "or" => call(crate::template::helpers::format::GO_OR, &args),
        "le" => call("lte", &args),
        "ge" => call("gte", &args),
        "index" => {
            let mut it = args.into_iter();
            let mut e = it.next().ok_or("index needs a value")?;
            for k in it {
                e = format!("(lookup {e} {k})");
            }
            Expr::Plain(e)
        }
        "html" | "js" | "urlquery" | "call" | "slice" => {
            return Err(format!(
                "{name} cannot be converted yet: write the text around the values instead"
            )
            .into())
        }
        "subtract" | "divide" | "modulo" if args.len() == 2 => {
            args.swap(0, 1);
            call(name, &args)
        }
        _ => call(name, &args),
    })
}

/// `$name` as a block parameter.
pub(super) fn param_name(v: &str) -> String {
    if v.is_empty() {
        "root".into()
    } else {
        v.to_string()
    }
}
