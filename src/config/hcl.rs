//! A reader for the HCL version 1 that consul-template's config files are written in, into JSON.
//!
//! hcl-rs only reads HCL2, which differs where consul-template configs rely on HCL1:
//! `perms = 0600` is octal, one-line blocks hold several attributes
//! (`wait { min = "2s" max = "10s" }`), and a block name repeated (`template { } template { }`)
//! builds a list. This reader covers the HCL1 that configs use: attributes, blocks (with optional
//! string labels), strings with escapes, heredocs, numbers (octal with a leading 0), bools, lists,
//! objects, and `#`, `//` and `/* */` comments. Errors name the line and column.

use serde_json::{Map, Number, Value};

/// A syntax error at a 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct HclError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Parses an HCL1 document into a JSON object. Repeated keys become a list of their values.
pub fn parse(src: &str) -> Result<Value, HclError> {
    let mut p = Parser {
        chars: src.chars().collect(),
        pos: 0,
        depth: 0,
    };
    let body = p.body(false)?;
    Ok(Value::Object(body))
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
    /// Open blocks and lists, bounded by `limits::HCL_NESTING` (the reader recurses).
    depth: usize,
}

impl Parser {
    fn error(&self, message: impl Into<String>) -> HclError {
        let (mut line, mut column) = (1, 1);
        for &c in &self.chars[..self.pos.min(self.chars.len())] {
            if c == '\n' {
                line += 1;
                column = 1;
            } else {
                column += 1;
            }
        }
        HclError {
            line,
            column,
            message: message.into(),
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, n: usize) -> Option<char> {
        self.chars.get(self.pos + n).copied()
    }

    fn advance_while(&mut self, pred: impl Fn(char) -> bool) {
        while self.peek().is_some_and(&pred) {
            self.pos += 1;
        }
    }

    /// Skips spaces, newlines, commas between items (when `commas`) and comments.
    fn skip_trivia(&mut self, commas: bool) -> Result<(), HclError> {
        while let Some(c) = self.peek() {
            if c.is_whitespace() || (commas && c == ',') {
                self.pos += 1;
            } else if c == '#' || (c == '/' && self.peek_at(1) == Some('/')) {
                self.advance_while(|c| c != '\n');
            } else if c == '/' && self.peek_at(1) == Some('*') {
                self.pos += 2;
                loop {
                    match self.peek() {
                        None => return Err(self.error("unterminated /* comment")),
                        Some('*') if self.peek_at(1) == Some('/') => {
                            self.pos += 2;
                            break;
                        }
                        _ => self.pos += 1,
                    }
                }
            } else {
                break;
            }
        }
        Ok(())
    }

    /// Enters one more block or list, refusing past `limits::HCL_NESTING`.
    fn enter(&mut self) -> Result<(), HclError> {
        self.depth += 1;
        if self.depth > crate::limits::HCL_NESTING {
            return Err(self.error(format!(
                "blocks and lists nest deeper than {} levels",
                crate::limits::HCL_NESTING
            )));
        }
        Ok(())
    }

    fn body(&mut self, nested: bool) -> Result<Map<String, Value>, HclError> {
        if nested {
            self.enter()?;
        }
        let map = self.body_items(nested)?;
        if nested {
            self.depth -= 1;
        }
        Ok(map)
    }

    fn body_items(&mut self, nested: bool) -> Result<Map<String, Value>, HclError> {
        let mut map = Map::new();
        loop {
            self.skip_trivia(true)?;
            match self.peek() {
                None if nested => return Err(self.error("expected '}' to close the block")),
                None => return Ok(map),
                Some('}') if nested => {
                    self.pos += 1;
                    return Ok(map);
                }
                Some(_) => {
                    let key = self.key()?;
                    let value = self.item_value()?;
                    insert(&mut map, key, value);
                }
            }
        }
    }

    fn key(&mut self) -> Result<String, HclError> {
        match self.peek() {
            Some('"') => self.string(),
            Some(c) if is_ident_char(c) => Ok(self.ident()),
            Some(c) => Err(self.error(format!("expected a key, found {c:?}"))),
            None => Err(self.error("expected a key")),
        }
    }

    fn ident(&mut self) -> String {
        let start = self.pos;
        self.advance_while(is_ident_char);
        self.chars[start..self.pos].iter().collect()
    }

    /// After a key: `= value`, `{ body }`, or `"label" ... { body }`.
    fn item_value(&mut self) -> Result<Value, HclError> {
        self.skip_trivia(false)?;
        match self.peek() {
            Some('=' | ':') => {
                self.pos += 1;
                self.skip_trivia(false)?;
                self.value()
            }
            Some('{') => {
                self.pos += 1;
                Ok(Value::Object(self.body(true)?))
            }
            Some('"') => {
                let label = self.string()?;
                self.enter()?;
                let inner = self.item_value()?;
                self.depth -= 1;
                let mut map = Map::new();
                map.insert(label, inner);
                Ok(Value::Object(map))
            }
            _ => Err(self.error("expected '=' or '{' after the key")),
        }
    }

    fn value(&mut self) -> Result<Value, HclError> {
        match self.peek() {
            Some('"') => Ok(Value::String(self.string()?)),
            Some('<') if self.peek_at(1) == Some('<') => Ok(Value::String(self.heredoc()?)),
            Some('{') => {
                self.pos += 1;
                Ok(Value::Object(self.body(true)?))
            }
            Some('[') => {
                self.pos += 1;
                self.enter()?;
                let mut items = Vec::new();
                loop {
                    self.skip_trivia(true)?;
                    match self.peek() {
                        Some(']') => {
                            self.pos += 1;
                            self.depth -= 1;
                            return Ok(Value::Array(items));
                        }
                        None => return Err(self.error("expected ']' to close the list")),
                        Some(_) => items.push(self.value()?),
                    }
                }
            }
            Some(c) if c == '-' || c.is_ascii_digit() => self.number(),
            Some(c) if is_ident_char(c) => {
                let start = self.pos;
                let word = self.ident();
                match word.as_str() {
                    "true" => Ok(Value::Bool(true)),
                    "false" => Ok(Value::Bool(false)),
                    _ => {
                        self.pos = start;
                        Err(self.error(format!("unexpected word {word:?}: strings need quotes")))
                    }
                }
            }
            Some(c) => Err(self.error(format!("expected a value, found {c:?}"))),
            None => Err(self.error("expected a value")),
        }
    }

    fn number(&mut self) -> Result<Value, HclError> {
        let start = self.pos;
        if self.peek() == Some('-') {
            self.pos += 1;
        }
        self.advance_while(|c| c.is_ascii_alphanumeric() || c == '.' || c == '+');
        let text: String = self.chars[start..self.pos].iter().collect();
        let (neg, digits) = match text.strip_prefix('-') {
            Some(d) => (true, d),
            None => (false, text.as_str()),
        };
        let sign = |n: i64| Value::from(if neg { -n } else { n });
        let parsed = if let Some(hex) = digits.strip_prefix("0x") {
            i64::from_str_radix(hex, 16).ok().map(sign)
        } else if digits.len() > 1
            && digits.starts_with('0')
            && digits.bytes().all(|b| b.is_ascii_digit())
        {
            // HCL1: a leading zero means octal, as in `perms = 0600`.
            i64::from_str_radix(digits, 8).ok().map(sign)
        } else if let Ok(n) = text.parse::<i64>() {
            Some(Value::from(n))
        } else {
            text.parse::<f64>()
                .ok()
                .and_then(Number::from_f64)
                .map(Value::Number)
        };
        parsed.ok_or_else(|| self.error(format!("invalid number {text:?}")))
    }

    fn string(&mut self) -> Result<String, HclError> {
        self.pos += 1; // the opening quote
        let mut out = String::new();
        loop {
            match self.peek() {
                None | Some('\n') => return Err(self.error("unterminated string")),
                Some('"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some('\\') => {
                    let esc = self
                        .peek_at(1)
                        .ok_or_else(|| self.error("unterminated string"))?;
                    self.pos += 2;
                    match esc {
                        'n' => out.push('\n'),
                        't' => out.push('\t'),
                        'r' => out.push('\r'),
                        '"' => out.push('"'),
                        '\\' => out.push('\\'),
                        'u' => {
                            let hex: String = self
                                .chars
                                .get(self.pos..self.pos + 4)
                                .unwrap_or_default()
                                .iter()
                                .collect();
                            let c = u32::from_str_radix(&hex, 16)
                                .ok()
                                .and_then(char::from_u32)
                                .ok_or_else(|| self.error("invalid \\u escape"))?;
                            out.push(c);
                            self.pos += 4;
                        }
                        other => return Err(self.error(format!("invalid escape \\{other}"))),
                    }
                }
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    fn heredoc(&mut self) -> Result<String, HclError> {
        self.pos += 2;
        let indented = self.peek() == Some('-');
        if indented {
            self.pos += 1;
        }
        let marker = self.ident();
        if marker.is_empty() {
            return Err(self.error("expected a heredoc marker after <<"));
        }
        self.advance_while(|c| c != '\n');
        self.pos += 1;
        let mut lines = Vec::new();
        loop {
            if self.peek().is_none() {
                return Err(self.error(format!("heredoc {marker} is not closed")));
            }
            let start = self.pos;
            self.advance_while(|c| c != '\n');
            let line: String = self.chars[start..self.pos].iter().collect();
            if self.peek() == Some('\n') {
                self.pos += 1;
            }
            if line.trim() == marker {
                break;
            }
            lines.push(line);
        }
        if indented {
            let indent = lines
                .iter()
                .filter(|l| !l.trim().is_empty())
                .map(|l| l.len() - l.trim_start().len())
                .min()
                .unwrap_or(0);
            for l in &mut lines {
                *l = l.chars().skip(indent).collect();
            }
        }
        let mut text = lines.join("\n");
        text.push('\n');
        Ok(text)
    }
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-' || c == '.'
}

/// A key seen again accumulates its values into a list (`template {…} template {…}`).
fn insert(map: &mut Map<String, Value>, key: String, value: Value) {
    match map.get_mut(&key) {
        None => {
            map.insert(key, value);
        }
        Some(Value::Array(list)) if value.is_object() && list.iter().all(Value::is_object) => {
            list.push(value);
        }
        Some(existing) => {
            let first = existing.take();
            *existing = Value::Array(vec![first, value]);
        }
    }
}

#[cfg(test)]
mod tests;
