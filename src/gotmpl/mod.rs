//! Go `text/template` files (consul-template's `.ctmpl`) converted to handlebars, so they load
//! unchanged and render with the same engine and helpers.

mod emit;
mod lex;
mod parse;

use std::path::Path;

/// Why a Go template cannot be converted, and where (1-based line and column of the action).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{col}: {message}")]
pub struct ConvertError {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

/// Why one construct cannot be converted (the caller adds where it is).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Reason(pub String);

impl From<String> for Reason {
    fn from(s: String) -> Reason {
        Reason(s)
    }
}

impl From<&str> for Reason {
    fn from(s: &str) -> Reason {
        Reason(s.into())
    }
}

impl ConvertError {
    fn at(line: usize, col: usize, message: String) -> ConvertError {
        ConvertError { line, col, message }
    }
}

/// The handlebars text for Go template `src`.
pub fn convert(src: &str) -> Result<String, ConvertError> {
    let pieces = lex::pieces(src)?;
    let nodes = parse::parse(&pieces)?;
    emit::emit(&nodes)
}

/// True for the file names consul-template users give Go templates.
pub fn is_go_template(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("ctmpl" | "tmpl" | "tpl" | "gotmpl")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seeds_constructs() {
        let hbs = convert(
            "{{$blue := env \"BLUE_NAME\"}}\n{{range service $blue}}\n  server {{.Address}}:{{.Port}};{{else}}\n  none{{end}}\n{{if eq $blue \"blue\"}}b{{else}}g{{end}}\n",
        )
        .unwrap();
        assert!(
            hbs.contains("{{#each (service (env \"BLUE_NAME\"))}}{{!}}"),
            "{hbs}"
        );
        assert!(hbs.contains("{{Address}}:{{Port}}"), "{hbs}");
        assert!(
            hbs.contains("{{#if (eq (env \"BLUE_NAME\") \"blue\")}}{{!}}"),
            "{hbs}"
        );
    }

    #[test]
    fn pipelines_variables_and_methods() {
        assert_eq!(
            convert("{{key \"a\" | toUpper}}").unwrap(),
            "{{toUpper (key \"a\")}}"
        );
        assert_eq!(
            convert("{{range $i, $s := service \"w\"}}{{$i}}={{$s.ID}}{{end}}").unwrap(),
            "{{#each (service \"w\") as |s i|}}{{!}}{{i}}={{s.ID}}{{/each}}{{!}}"
        );
        assert_eq!(
            convert("{{if .Tags.Contains \"v1\"}}y{{end}}").unwrap(),
            "{{#if (contains \"v1\" Tags)}}{{!}}y{{/if}}{{!}}"
        );
        assert_eq!(convert("{{5 | subtract 2}}").unwrap(), "{{subtract 5 2}}");
        assert_eq!(
            convert("{{eq .A 1 2}}").unwrap(),
            "{{__consul_render_or (eq A 1) (eq A 2)}}"
        );
        assert_eq!(
            convert("a{{\"{{x\"}} {{.Address}}").unwrap(),
            "a\\{{x {{Address}}"
        );
        assert_eq!(
            convert("{\"k\": { {{- .Port -}} }}").unwrap(),
            "{\"k\": {{trimSpace \"{\"}}{{Port}}}}"
        );
        // Go's or gives the deciding value.
        assert_eq!(
            convert("{{or .Name \"x\"}}").unwrap(),
            "{{__consul_render_or Name \"x\"}}"
        );
        // Lists and maps print as Go prints them.
        assert_eq!(convert("{{.Tags}}").unwrap(), "{{__consul_render_go Tags}}");
    }

    #[test]
    fn a_variable_that_reads_dot_is_bound_where_it_is_set() {
        let hbs = convert(
            "{{range services}}{{$name := .Name}}{{range service .Name}}{{$name}}={{.Address}} {{end}}{{end}}",
        )
        .unwrap();
        assert!(
            hbs.contains("{{#__consul_render_let Name as |name|}}"),
            "{hbs}"
        );
        assert!(
            hbs.contains("{{__consul_render_go name}}={{Address}}"),
            "{hbs}"
        );
        assert!(
            hbs.contains("{{/__consul_render_let}}{{!}}{{/each}}"),
            "{hbs}"
        );
    }

    #[test]
    fn a_comment_over_lines_keeps_the_lines() {
        let hbs = convert("{{/* a\nb\n*/}}\n{{.X}}").unwrap();
        assert_eq!(hbs.lines().count(), 4, "the source's four lines");
        assert!(hbs.ends_with("\n{{__consul_render_go X}}"), "{hbs}");
    }

    #[test]
    fn what_cannot_convert_is_named_with_its_place() {
        let e = convert("a\n  {{slice .A 1}}").unwrap_err();
        assert_eq!((e.line, e.col), (2, 3));
        assert!(e.message.contains("slice"), "{e}");
        let e = convert("{{$x := 1}}{{$x = 2}}").unwrap_err();
        assert!(e.message.contains("$x = "), "{e}");
        assert!(convert("{{if .A}}x")
            .unwrap_err()
            .message
            .contains("never closed"));
    }
}
