//! Parsing a large template in pieces. handlebars-rust's parser asks pest for the line and
//! column of every element, and pest counts them from the start of the source each time, so
//! a template's parse time grows with the square of its size (8,000 one-line blocks took
//! 14.6 s; in pieces of 128 bytes, 47 ms, and 32,000 take 0.19 s). A template over
//! `WHOLE_BYTES` is cut at lines that start outside every block, each piece is parsed on its
//! own, and the pieces' elements are joined into one template with their line numbers moved to
//! where they are in the whole source.
//!
//! A cut never falls where it would change the output: not inside a block, a tag, a comment
//! or a raw block (the scan in `guard` only offers line starts in plain text outside blocks),
//! and not where whitespace control (`~`) reaches across the line break.

use handlebars::template::{Template, TemplateElement};
use handlebars::Handlebars;

/// Templates up to this size are parsed whole: cutting them saves less than it costs.
pub const WHOLE_BYTES: usize = 8 << 10;

/// The size of the pieces a larger template is cut into.
pub const PIECE_BYTES: usize = 1 << 7;

/// The piece size for a template of `len` bytes.
pub fn piece_bytes(len: usize) -> usize {
    if len <= WHOLE_BYTES {
        usize::MAX
    } else {
        PIECE_BYTES
    }
}

/// The name each piece is parsed under in the registry (removed again after).
const PIECE: &str = "__consul_render_piece";

/// Parses `source` (whose top-level line starts are `line_starts`) in pieces of about
/// `piece_bytes`. An error comes with the line offset of the piece it was found in.
pub fn parse(
    hb: &mut Handlebars<'static>,
    source: &str,
    line_starts: &[usize],
    piece_bytes: usize,
) -> Result<Template, (handlebars::TemplateError, usize)> {
    let cuts = cuts(source, line_starts, piece_bytes);
    let mut whole: Option<Template> = None;
    let mut start = 0;
    let mut line_offset = 0;
    for end in cuts.into_iter().chain(std::iter::once(source.len())) {
        let piece = &source[start..end];
        hb.register_template_string(PIECE, piece)
            .map_err(|e| (e, line_offset))?;
        let mut t = hb.get_template(PIECE).cloned().unwrap_or_default();
        hb.unregister_template(PIECE);
        if line_offset > 0 {
            shift_lines(&mut t, line_offset);
        }
        match whole.as_mut() {
            None => whole = Some(t),
            Some(w) => {
                // Text that runs across a cut stays one piece of text, as in a whole parse.
                if let (Some(TemplateElement::RawString(a)), Some(TemplateElement::RawString(b))) =
                    (w.elements.last_mut(), t.elements.first())
                {
                    a.push_str(b);
                    t.elements.remove(0);
                    t.mapping.remove(0);
                }
                w.elements.append(&mut t.elements);
                w.mapping.append(&mut t.mapping);
            }
        }
        line_offset += piece.matches('\n').count();
        start = end;
    }
    Ok(whole.unwrap_or_default())
}

/// Where to cut: the first safe line start after every `piece_bytes`.
fn cuts(source: &str, line_starts: &[usize], piece_bytes: usize) -> Vec<usize> {
    let mut out = Vec::new();
    if source.len() <= piece_bytes {
        return out;
    }
    let mut last = 0;
    for &at in line_starts {
        if at - last >= piece_bytes && at < source.len() && safe_cut(source, at) {
            out.push(at);
            last = at;
        }
    }
    out
}

/// A cut at line start `at` is safe unless whitespace control reaches across it: the line
/// before ends in `~}}` or the line after starts with `{{~` (after blanks).
fn safe_cut(source: &str, at: usize) -> bool {
    let before = source[..at].trim_end();
    let after = source[at..].trim_start_matches([' ', '\t']);
    !before.ends_with("~}}") && !after.starts_with("{{~") && !after.starts_with('\n')
}

/// Moves every line number in `t` (and the templates inside it) down by `by` lines.
fn shift_lines(t: &mut Template, by: usize) {
    for m in &mut t.mapping {
        m.0 += by;
    }
    for el in &mut t.elements {
        match el {
            TemplateElement::HelperBlock(h)
            | TemplateElement::Expression(h)
            | TemplateElement::HtmlExpression(h) => {
                for inner in [&mut h.template, &mut h.inverse].into_iter().flatten() {
                    shift_lines(inner, by);
                }
            }
            TemplateElement::DecoratorBlock(d)
            | TemplateElement::DecoratorExpression(d)
            | TemplateElement::PartialBlock(d)
            | TemplateElement::PartialExpression(d) => {
                if let Some(inner) = d.template.as_mut() {
                    shift_lines(inner, by);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::guard;

    /// Renders `src` parsed whole and parsed in pieces of `piece` bytes.
    fn both(src: &str, piece: usize) -> (String, String) {
        let lines = guard::scan_nesting(src).unwrap();
        let render = |bytes: usize| {
            let mut hb = Handlebars::new();
            hb.register_escape_fn(handlebars::no_escape);
            hb.set_prevent_indent(true);
            let t = parse(&mut hb, src, &lines, bytes).unwrap();
            hb.register_template("t", t);
            hb.render("t", &serde_json::json!({"xs": [1, 2], "v": "x"}))
                .unwrap()
        };
        (render(usize::MAX), render(piece))
    }

    #[test]
    fn pieces_render_as_the_whole() {
        let samples = [
            "a\n{{#if v}}\n  b\n{{/if}}\nc\n  {{v}}\n{{#each xs}}\n- {{this}}\n{{/each}}\nend\n",
            "x {{~v~}} y\n   {{~v}}\nz\n{{v~}}\n\n  w\n",
            "{{#*inline \"p\"}}[{{this}}]{{/inline}}\n{{> p v}}\n  {{> p v}}\n{{!-- c\n--}}\n{{{{raw}}}}\n{{x}}\n{{{{/raw}}}}\nq\n",
            "\\{{v}}\n{{v}}\r\n\r\n{{#unless v}}\nno\n{{else}}\nyes\n{{/unless}}\n",
            include_str!("../../templates/nginx-blue-green.hbs"),
        ];
        for src in samples {
            let lines = guard::scan_nesting(src).unwrap();
            let mut hb = Handlebars::new();
            hb.set_prevent_indent(true);
            let whole = parse(&mut hb, src, &lines, usize::MAX).unwrap();
            for piece in [1, 2, 5, 16, 300] {
                // (The nginx template needs our helpers to render; its parse is compared.)
                if !src.contains("upstream") {
                    let (rendered_whole, rendered_pieces) = both(src, piece);
                    assert_eq!(rendered_whole, rendered_pieces, "piece {piece} of {src:?}");
                }
                let pieces = parse(&mut hb, src, &lines, piece).unwrap();
                assert_eq!(pieces.elements, whole.elements, "piece {piece} of {src:?}");
            }
        }
    }

    #[test]
    fn errors_and_positions_point_into_the_whole_source() {
        let src = "line1\nline2\n{{v}}\nline4\n{{#if v}}\n";
        let lines = guard::scan_nesting(src).unwrap();
        let mut hb = Handlebars::new();
        let at = |piece| {
            let (e, offset) = parse(&mut Handlebars::new(), src, &lines, piece).unwrap_err();
            e.pos().map(|(l, c)| (l + offset, c))
        };
        assert_eq!(at(1), at(usize::MAX));
        assert!(at(1).is_some());
        let src = "a\nb\n{{v}}\n";
        let lines = guard::scan_nesting(src).unwrap();
        let t = parse(&mut hb, src, &lines, 1).unwrap();
        let whole = parse(&mut hb, src, &lines, usize::MAX).unwrap();
        let pos = |t: &Template| t.mapping.iter().map(|m| (m.0, m.1)).collect::<Vec<_>>();
        assert_eq!(pos(&t), pos(&whole), "{:?}", t.elements);
        assert_eq!(t.elements, whole.elements);
    }

    /// The parser's work on a piece grows with the square of the piece (pest counts each
    /// element's line from the piece's start): the sum of the squares of the pieces is the
    /// work, and it must grow with the template, not with its square.
    fn parse_work(src: &str) -> usize {
        let lines = guard::scan_nesting(src).unwrap();
        let mut start = 0;
        let mut work = 0;
        for end in cuts(src, &lines, piece_bytes(src.len()))
            .into_iter()
            .chain(std::iter::once(src.len()))
        {
            work += (end - start) * (end - start);
            start = end;
        }
        work
    }

    #[test]
    fn compile_work_is_linear_in_the_template() {
        let shapes = [
            "{{#if true}}a{{/if}}\n",
            "upstream {{Name}} {\n{{#each (service Name)}}  server {{Address}}:{{Port}};\n{{/each}}}\n",
            "{{#each (loop 2)}}{{#if @first}}x{{else}}y{{/if}}{{/each}}\n{{! a comment }}\nplain text\n",
        ];
        for shape in shapes {
            let at = |n: usize| parse_work(&shape.repeat(n));
            let (small, large) = (at(1_000), at(32_000));
            assert!(
                large <= small * 32 * 5 / 4,
                "32x the template took {}x the work: {shape:?}",
                large / small.max(1)
            );
        }
    }
}
