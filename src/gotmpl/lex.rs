//! Go `text/template` source into text and actions, with Go's trim markers applied (`{{- ` takes
//! the whitespace before the action, ` -}}` the whitespace after) and comments dropped.

use super::ConvertError;

/// A piece of the source: literal text, or the inside of one action with where it starts.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    Text(String),
    Action {
        body: String,
        line: usize,
        col: usize,
    },
    /// A comment that spanned this many line breaks (kept, so lines stay where they were).
    Lines(usize),
}

/// Splits `src` into pieces.
pub fn pieces(src: &str) -> Result<Vec<Piece>, ConvertError> {
    let mut out: Vec<Piece> = Vec::new();
    let mut rest = src;
    let mut offset = 0;
    let mut trim_next = false;
    while let Some(open) = rest.find("{{") {
        let mut text = rest[..open].to_string();
        if trim_next {
            text = text.trim_start().to_string();
        }
        let after_open = &rest[open + 2..];
        let left_trim = after_open.starts_with("- ")
            || after_open.starts_with("-\t")
            || after_open.starts_with("-\n")
            || after_open.starts_with("-\r");
        if left_trim {
            text = text.trim_end().to_string();
        }
        if !text.is_empty() {
            out.push(Piece::Text(text));
        }
        let start = offset + open;
        let (line, col) = position(src, start);
        let inner_start = if left_trim { 3 } else { 2 };
        let inner = &rest[open + inner_start..];
        let close = find_close(inner).ok_or_else(|| {
            ConvertError::at(line, col, "unclosed action: no matching }}".to_string())
        })?;
        let mut body = &inner[..close];
        let right_trim = body.ends_with(" -")
            || body.ends_with("\t-")
            || body.ends_with("\n-")
            || body.ends_with("\r-");
        if right_trim {
            body = &body[..body.len() - 1];
        }
        trim_next = right_trim;
        let trimmed = body.trim();
        if !(trimmed.starts_with("/*") && trimmed.ends_with("*/")) {
            out.push(Piece::Action {
                body: body.to_string(),
                line,
                col,
            });
        } else if body.contains('\n') {
            out.push(Piece::Lines(body.matches('\n').count()));
        }
        let consumed = open + inner_start + close + 2;
        rest = &rest[consumed..];
        offset += consumed;
    }
    let mut text = rest.to_string();
    if trim_next {
        text = text.trim_start().to_string();
    }
    if !text.is_empty() {
        out.push(Piece::Text(text));
    }
    Ok(merge_text(out))
}

/// Text either side of a dropped comment is one text.
fn merge_text(pieces: Vec<Piece>) -> Vec<Piece> {
    let mut out: Vec<Piece> = Vec::with_capacity(pieces.len());
    for p in pieces {
        match (out.last_mut(), p) {
            (Some(Piece::Text(a)), Piece::Text(b)) => a.push_str(&b),
            (_, p) => out.push(p),
        }
    }
    out
}

/// Where the action's `}}` is, skipping quoted strings and comments.
fn find_close(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'`' => {
                i += 1;
                while i < b.len() && b[i] != b'`' {
                    i += 1;
                }
            }
            b'\'' => {
                i += 1;
                while i < b.len() && b[i] != b'\'' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let end = s[i + 2..].find("*/")?;
                i += end + 3;
            }
            b'}' if b.get(i + 1) == Some(&b'}') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// 1-based line and column (in characters) of byte `at`.
pub fn position(src: &str, at: usize) -> (usize, usize) {
    let before = &src[..at.min(src.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trim_markers_take_the_whitespace() {
        let p = pieces("a  \n {{- .X -}} \n b").unwrap();
        assert_eq!(p[0], Piece::Text("a".into()));
        assert!(matches!(&p[1], Piece::Action { body, .. } if body.trim() == ".X"));
        assert_eq!(p[2], Piece::Text("b".into()));
        // `{{-3}}` is the number -3, not a trim marker.
        let p = pieces("x {{-3}}").unwrap();
        assert_eq!(p[0], Piece::Text("x ".into()));
    }

    #[test]
    fn comments_go_and_strings_may_hold_braces() {
        let p = pieces("a{{/* c }} */}}b{{ \"}}\" }}").unwrap();
        assert_eq!(p[0], Piece::Text("ab".into()));
        assert!(matches!(&p[1], Piece::Action { body, .. } if body.trim() == "\"}}\""));
        assert!(pieces("a {{ .X").is_err());
    }
}
