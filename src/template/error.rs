//! Template errors as users read them: `FILE:LINE:COL: message`, the source line, a caret.

use std::fmt;

/// A syntax or render error in a template, positioned when handlebars knows where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
    /// The offending source line, shown with a caret under the column.
    pub source_line: Option<String>,
}

impl TemplateError {
    /// Builds an error at 1-based `line`/`column` of `source`.
    pub fn at(
        file: &str,
        source: &str,
        line: Option<usize>,
        column: Option<usize>,
        message: String,
    ) -> Self {
        let source_line = line
            .and_then(|l| source.lines().nth(l.saturating_sub(1)))
            .map(str::to_string);
        TemplateError {
            file: file.to_string(),
            line,
            column,
            message,
            source_line,
        }
    }
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "{}:{l}:{c}: {}", self.file, self.message)?,
            (Some(l), None) => write!(f, "{}:{l}: {}", self.file, self.message)?,
            _ => write!(f, "{}: {}", self.file, self.message)?,
        }
        if let (Some(src), Some(col)) = (&self.source_line, self.column) {
            // A long line is shown as a window around the column.
            const WIDTH: usize = 100;
            let chars: Vec<char> = src.replace('\t', " ").chars().collect();
            let col = col.saturating_sub(1).min(chars.len());
            let start = col.saturating_sub(WIDTH / 2);
            let end = (start + WIDTH).min(chars.len());
            let mut shown: String = chars[start..end].iter().collect();
            let mut pad = " ".repeat(col - start);
            if start > 0 {
                shown.insert(0, '…');
                pad.push(' ');
            }
            if end < chars.len() {
                shown.push('…');
            }
            write!(f, "\n    {shown}\n    {pad}^")?;
        }
        Ok(())
    }
}

impl std::error::Error for TemplateError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caret_under_the_column() {
        let e = TemplateError::at(
            "t.hbs",
            "line one\n  {{bad}}\n",
            Some(2),
            Some(3),
            "boom".into(),
        );
        assert_eq!(e.to_string(), "t.hbs:2:3: boom\n      {{bad}}\n      ^");
    }

    #[test]
    fn long_lines_are_windowed() {
        let line = format!("{}{{{{bad}}}}{}", "x".repeat(500), "y".repeat(500));
        let e = TemplateError::at("t.hbs", &line, Some(1), Some(501), "boom".into());
        let text = e.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[1].chars().count() < 110, "{text}");
        let caret = lines[2].chars().count() - 1;
        assert_eq!(lines[1].chars().nth(caret), Some('{'), "{text}");
    }
}
