//! Go template actions into a tree: pipelines of commands, and the `if`/`range`/`with`/
//! `define`/`template`/`block` structure around them.

use super::lex::Piece;
use super::ConvertError;
use super::Reason;

mod pipeline;
pub use pipeline::pipeline;
use pipeline::{tokens, Tok};

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

#[cfg(test)]
mod tests;
