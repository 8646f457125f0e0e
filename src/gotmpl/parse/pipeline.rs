//! Pipelines: Go's tokens (strings, numbers, fields, variables, parentheses) into commands and arguments.

use super::*;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    Arg(Arg),
    Str(String),
    Pipe,
    Open,
    Close,
    Declare,
    Assign,
    Comma,
}

/// A pipeline from an action's text.
pub fn pipeline(src: &str, pos: Pos) -> Result<Pipeline, ConvertError> {
    let toks = tokens(src, pos)?;
    let mut at = 0;
    let p = pipe(&toks, &mut at, pos)?;
    if at < toks.len() {
        return Err(ConvertError::at(
            pos.0,
            pos.1,
            format!("unexpected {:?} in {src:?}", toks[at]),
        ));
    }
    Ok(p)
}

pub(super) fn pipe(toks: &[Tok], at: &mut usize, pos: Pos) -> Result<Pipeline, ConvertError> {
    let mut p = Pipeline::default();
    // A declaration: `$x :=` or `$i, $e :=`.
    let mut look = *at;
    let mut names = Vec::new();
    while let Some(Tok::Arg(Arg::Var(name, fields))) = toks.get(look) {
        if !fields.is_empty() {
            break;
        }
        names.push(name.clone());
        look += 1;
        match toks.get(look) {
            Some(Tok::Comma) => look += 1,
            Some(Tok::Declare | Tok::Assign) => {
                p.assign = toks[look] == Tok::Assign;
                p.decl = names.clone();
                *at = look + 1;
                break;
            }
            _ => break,
        }
    }
    let mut cmd: Vec<Arg> = Vec::new();
    while let Some(t) = toks.get(*at) {
        match t {
            Tok::Close => break,
            Tok::Pipe => {
                if cmd.is_empty() {
                    return Err(ConvertError::at(
                        pos.0,
                        pos.1,
                        "empty command in pipeline".into(),
                    ));
                }
                p.cmds.push(std::mem::take(&mut cmd));
            }
            Tok::Open => {
                *at += 1;
                let inner = pipe(toks, at, pos)?;
                if toks.get(*at) != Some(&Tok::Close) {
                    return Err(ConvertError::at(pos.0, pos.1, "unclosed (".into()));
                }
                cmd.push(Arg::Sub(Box::new(inner)));
            }
            Tok::Arg(a) => cmd.push(a.clone()),
            Tok::Str(s) => cmd.push(Arg::Str(s.clone())),
            Tok::Declare | Tok::Assign | Tok::Comma => {
                return Err(ConvertError::at(
                    pos.0,
                    pos.1,
                    "unexpected := , or = in a pipeline".into(),
                ))
            }
        }
        *at += 1;
    }
    if cmd.is_empty() {
        return Err(ConvertError::at(pos.0, pos.1, "missing value".into()));
    }
    p.cmds.push(cmd);
    Ok(p)
}

pub(super) fn tokens(src: &str, pos: Pos) -> Result<Vec<Tok>, ConvertError> {
    let err = |m: String| ConvertError::at(pos.0, pos.1, m);
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let word = |i: &mut usize| {
        let start = *i;
        while *i < chars.len() && (chars[*i].is_alphanumeric() || chars[*i] == '_') {
            *i += 1;
        }
        chars[start..*i].iter().collect::<String>()
    };
    let fields = |i: &mut usize| {
        let mut f = Vec::new();
        while *i < chars.len()
            && chars[*i] == '.'
            && chars
                .get(*i + 1)
                .is_some_and(|c| c.is_alphabetic() || *c == '_')
        {
            *i += 1;
            f.push(word(i));
        }
        f
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '|' => {
                out.push(Tok::Pipe);
                i += 1;
            }
            '(' => {
                out.push(Tok::Open);
                i += 1;
            }
            ')' => {
                out.push(Tok::Close);
                i += 1;
                let f = fields(&mut i);
                if !f.is_empty() {
                    return Err(err("a field of a parenthesised value ((…).Field) cannot be converted: use lookup".into()));
                }
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            ':' if chars.get(i + 1) == Some(&'=') => {
                out.push(Tok::Declare);
                i += 2;
            }
            '=' => {
                out.push(Tok::Assign);
                i += 1;
            }
            '.' => {
                let f = fields(&mut i);
                if f.is_empty() {
                    i += 1;
                    out.push(Tok::Arg(Arg::Dot));
                } else {
                    out.push(Tok::Arg(Arg::Field(f)));
                }
            }
            '$' => {
                i += 1;
                let name = word(&mut i);
                let f = fields(&mut i);
                out.push(Tok::Arg(Arg::Var(name, f)));
            }
            '"' => {
                let start = i;
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
                let lit: String = chars[start + 1..i.min(chars.len())].iter().collect();
                i += 1;
                let s = unquote(&lit).map_err(|e| err(format!("string \"{lit}\": {e}")))?;
                out.push(Tok::Str(s));
            }
            '`' => {
                let start = i + 1;
                i += 1;
                while i < chars.len() && chars[i] != '`' {
                    i += 1;
                }
                out.push(Tok::Str(chars[start..i.min(chars.len())].iter().collect()));
                i += 1;
            }
            '\'' => {
                return Err(err(
                    "character constants ('x') cannot be converted: use a string".into(),
                ))
            }
            c if c.is_ascii_digit()
                || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                let start = i;
                i += 1;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '.' || chars[i] == '_')
                {
                    i += 1;
                }
                out.push(Tok::Arg(Arg::Num(chars[start..i].iter().collect())));
            }
            c if c.is_alphabetic() || c == '_' => {
                let w = word(&mut i);
                out.push(Tok::Arg(match w.as_str() {
                    "true" => Arg::Bool(true),
                    "false" => Arg::Bool(false),
                    "nil" => Arg::Nil,
                    _ => Arg::Func(w),
                }));
            }
            other => return Err(err(format!("unexpected {other:?}"))),
        }
    }
    Ok(out)
}

/// Go's interpreted string literal (without its quotes): `\n`, `\t`, `\\`, `\"`, `\xNN` bytes,
/// `\uNNNN`, `\UNNNNNNNN`, `\NNN` octal bytes.
pub(super) fn unquote(s: &str) -> Result<String, Reason> {
    let mut bytes: Vec<u8> = Vec::with_capacity(s.len());
    let mut it = s.chars().peekable();
    let hex = |it: &mut std::iter::Peekable<std::str::Chars>, n: usize| -> Result<u32, Reason> {
        let digits: String = (0..n).filter_map(|_| it.next()).collect();
        u32::from_str_radix(&digits, 16)
            .map_err(|_| Reason(format!("bad escape digits {digits:?}")))
    };
    while let Some(c) = it.next() {
        if c != '\\' {
            let mut buf = [0u8; 4];
            bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let e = it.next().ok_or("a string ends in \\")?;
        let ch = match e {
            'n' => '\n',
            't' => '\t',
            'r' => '\r',
            'a' => '\u{7}',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'v' => '\u{b}',
            '\\' => '\\',
            '"' => '"',
            '\'' => '\'',
            'x' => {
                bytes.push(u8::try_from(hex(&mut it, 2)?).map_err(|e| e.to_string())?);
                continue;
            }
            'u' | 'U' => {
                let n = hex(&mut it, if e == 'u' { 4 } else { 8 })?;
                char::from_u32(n).ok_or(format!("\\{e}{n:x} is not a character"))?
            }
            '0'..='7' => {
                let digits: String = std::iter::once(e)
                    .chain((0..2).filter_map(|_| it.next()))
                    .collect();
                bytes.push(
                    u8::from_str_radix(&digits, 8)
                        .map_err(|_| format!("bad octal escape {digits}"))?,
                );
                continue;
            }
            other => return Err(format!("unknown escape \\{other}").into()),
        };
        let mut buf = [0u8; 4];
        bytes.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
    }
    String::from_utf8(bytes).map_err(|_| Reason("the escapes do not make UTF-8 text".into()))
}
