//! Go template actions into a tree: pipelines of commands, and the `if`/`range`/`with`/
//! `define`/`template`/`block` structure around them.

use super::lex::Piece;
use super::ConvertError;
use super::Reason;

/// One operand.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// `.`
    Dot,
    /// `.A.B`
    Field(Vec<String>),
    /// `$x.A.B` (`$` alone is the name "")
    Var(String, Vec<String>),
    Str(String),
    Num(String),
    Bool(bool),
    Nil,
    /// A function name.
    Func(String),
    /// `( pipeline )`
    Sub(Box<Pipeline>),
}

/// `$a, $b := cmd | cmd …`
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Pipeline {
    pub decl: Vec<String>,
    /// `=` rather than `:=`.
    pub assign: bool,
    pub cmds: Vec<Vec<Arg>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Text(String),
    /// Line breaks to keep without printing them (a comment's).
    Lines(usize),
    Action(Pipeline, Pos),
    If(Vec<(Pipeline, Vec<Node>)>, Option<Vec<Node>>, Pos),
    Range(Pipeline, Vec<Node>, Option<Vec<Node>>, Pos),
    With(Pipeline, Vec<Node>, Option<Vec<Node>>, Pos),
    Define(String, Vec<Node>),
    Template(String, Option<Pipeline>, Pos),
    Block(String, Option<Pipeline>, Vec<Node>, Pos),
}

pub type Pos = (usize, usize);

/// Parses the pieces into a list of nodes.
pub fn parse(pieces: &[Piece]) -> Result<Vec<Node>, ConvertError> {
    let mut p = Parser { pieces, at: 0 };
    let (nodes, end) = p.list()?;
    match end {
        None => Ok(nodes),
        Some((word, pos)) => Err(ConvertError::at(
            pos.0,
            pos.1,
            format!("unexpected {{{{{word}}}}}"),
        )),
    }
}

struct Parser<'a> {
    pieces: &'a [Piece],
    at: usize,
}

/// What ended a list: `end`, `else` (with what follows it), or the source's end.
type Ended = Option<(String, Pos)>;

impl Parser<'_> {
    /// Nodes up to `{{end}}` or `{{else …}}` (returned with the rest of the action).
    fn list(&mut self) -> Result<(Vec<Node>, Ended), ConvertError> {
        let mut nodes = Vec::new();
        while let Some(piece) = self.pieces.get(self.at) {
            self.at += 1;
            let (body, line, col) = match piece {
                Piece::Text(t) => {
                    nodes.push(Node::Text(t.clone()));
                    continue;
                }
                Piece::Lines(n) => {
                    nodes.push(Node::Lines(*n));
                    continue;
                }
                Piece::Action { body, line, col } => (body.trim(), *line, *col),
            };
            let pos = (line, col);
            let (word, rest) = split_word(body);
            match word {
                "end" => return Ok((nodes, Some(("end".into(), pos)))),
                "else" => return Ok((nodes, Some((format!("else {rest}").trim().to_string(), pos)))),
                "if" => nodes.push(self.if_chain(rest, pos)?),
                "range" | "with" => {
                    let pipe = pipeline(rest, pos)?;
                    let (body, end) = self.list()?;
                    let inverse = match end {
                        Some((e, _)) if e == "end" => None,
                        Some((e, p)) if e == "else" => {
                            let (inv, end2) = self.list()?;
                            expect_end(end2, p)?;
                            Some(inv)
                        }
                        Some((e, p)) => {
                            return Err(ConvertError::at(
                                p.0,
                                p.1,
                                format!("{{{{{e}}}}} in {word}: only {{{{else}}}} and {{{{end}}}} may follow"),
                            ))
                        }
                        None => return Err(unclosed(word, pos)),
                    };
                    nodes.push(if word == "range" {
                        Node::Range(pipe, body, inverse, pos)
                    } else {
                        Node::With(pipe, body, inverse, pos)
                    });
                }
                "define" | "block" => {
                    let (name, rest) = string_arg(rest, pos)?;
                    let arg = if rest.trim().is_empty() {
                        None
                    } else {
                        Some(pipeline(rest, pos)?)
                    };
                    let (body, end) = self.list()?;
                    expect_end(end, pos)?;
                    nodes.push(if word == "define" {
                        Node::Define(name, body)
                    } else {
                        Node::Block(name, arg, body, pos)
                    });
                }
                "template" => {
                    let (name, rest) = string_arg(rest, pos)?;
                    let arg = if rest.trim().is_empty() {
                        None
                    } else {
                        Some(pipeline(rest, pos)?)
                    };
                    nodes.push(Node::Template(name, arg, pos));
                }
                "break" | "continue" => {
                    return Err(ConvertError::at(
                        line,
                        col,
                        format!("{{{{{word}}}}} has no handlebars equivalent: filter the list first (e.g. with a helper) instead"),
                    ))
                }
                _ => nodes.push(Node::Action(pipeline(body, pos)?, pos)),
            }
        }
        Ok((nodes, None))
    }

    /// `if` with its `else if` branches and `else`.
    fn if_chain(&mut self, cond: &str, pos: Pos) -> Result<Node, ConvertError> {
        let mut branches = vec![(pipeline(cond, pos)?, Vec::new())];
        loop {
            let (body, end) = self.list()?;
            if let Some(last) = branches.last_mut() {
                last.1 = body;
            }
            match end {
                Some((e, _)) if e == "end" => return Ok(Node::If(branches, None, pos)),
                Some((e, p)) if e == "else" => {
                    let (inv, end2) = self.list()?;
                    expect_end(end2, p)?;
                    return Ok(Node::If(branches, Some(inv), pos));
                }
                Some((e, p)) if e.starts_with("else if ") => {
                    branches.push((pipeline(&e["else if ".len()..], p)?, Vec::new()));
                }
                Some((e, p)) => {
                    return Err(ConvertError::at(
                        p.0,
                        p.1,
                        format!("{{{{{e}}}}} in if: only {{{{else if …}}}}, {{{{else}}}} and {{{{end}}}} may follow"),
                    ))
                }
                None => return Err(unclosed("if", pos)),
            }
        }
    }
}

fn expect_end(end: Ended, pos: Pos) -> Result<(), ConvertError> {
    match end {
        Some((e, _)) if e == "end" => Ok(()),
        Some((e, p)) => Err(ConvertError::at(
            p.0,
            p.1,
            format!("expected {{{{end}}}}, found {{{{{e}}}}}"),
        )),
        None => Err(unclosed("block", pos)),
    }
}

fn unclosed(what: &str, pos: Pos) -> ConvertError {
    ConvertError::at(
        pos.0,
        pos.1,
        format!("{{{{{what}}}}} is never closed with {{{{end}}}}"),
    )
}

fn split_word(body: &str) -> (&str, &str) {
    let end = body
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(body.len());
    (&body[..end], &body[end..])
}

fn string_arg(rest: &str, pos: Pos) -> Result<(String, &str), ConvertError> {
    let toks = tokens(rest, pos)?;
    match toks.first() {
        Some(Tok::Str(s)) => {
            // The rest after the name: re-find it in the text.
            let rest = rest.trim_start();
            let skip = quoted_len(rest).unwrap_or(rest.len());
            Ok((s.clone(), &rest[skip..]))
        }
        _ => Err(ConvertError::at(
            pos.0,
            pos.1,
            "expected a quoted template name".into(),
        )),
    }
}

fn quoted_len(s: &str) -> Option<usize> {
    let q = s.chars().next()?;
    let mut escaped = false;
    for (i, c) in s.char_indices().skip(1) {
        if q == '"' && c == '\\' && !escaped {
            escaped = true;
            continue;
        }
        if c == q && !escaped {
            return Some(i + 1);
        }
        escaped = false;
    }
    None
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
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

fn pipe(toks: &[Tok], at: &mut usize, pos: Pos) -> Result<Pipeline, ConvertError> {
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

fn tokens(src: &str, pos: Pos) -> Result<Vec<Tok>, ConvertError> {
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
fn unquote(s: &str) -> Result<String, Reason> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_string_escapes() {
        assert_eq!(
            unquote(r"a\u2026b\xf0\x9f\x9a\x80\n\101").unwrap(),
            "a\u{2026}b\u{1f680}\nA"
        );
        assert!(unquote(r"\q").is_err());
    }

    #[test]
    fn pipelines_and_declarations() {
        let p = pipeline(r#"$x := service "web" | len"#, (1, 1)).unwrap();
        assert_eq!(p.decl, ["x"]);
        assert_eq!(p.cmds.len(), 2);
        let p = pipeline("$i, $e := .Tags", (1, 1)).unwrap();
        assert_eq!(p.decl, ["i", "e"]);
        assert_eq!(p.cmds[0], [Arg::Field(vec!["Tags".into()])]);
        let p = pipeline(r#"eq (index .Meta "a") "b""#, (1, 1)).unwrap();
        assert!(matches!(&p.cmds[0][1], Arg::Sub(_)));
    }
}
