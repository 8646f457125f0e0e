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
            let src = src.replace('\t', " ");
            let pad: String = src
                .chars()
                .take(col.saturating_sub(1))
                .map(|_| ' ')
                .collect();
            write!(f, "\n    {src}\n    {pad}^")?;
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
}
