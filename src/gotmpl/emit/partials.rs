//! Go's define, template and block as handlebars inline partials.

use super::*;

impl Emitter {
    pub(super) fn define(&mut self, name: &str, body: &[Node]) -> Result<(), ConvertError> {
        let saved = (
            std::mem::take(&mut self.out),
            std::mem::replace(&mut self.scopes, vec![HashMap::new()]),
            self.depth,
        );
        self.depth = 0;
        let r = self.nodes(body);
        let inner = std::mem::replace(&mut self.out, saved.0);
        self.scopes = saved.1;
        self.depth = saved.2;
        r?;
        self.defines.push(format!(
            "{{{{#*inline \"{}\"}}}}{inner}{{{{/inline}}}}",
            partial_name(name)
        ));
        Ok(())
    }

    pub(super) fn call(
        &mut self,
        name: &str,
        arg: Option<&Pipeline>,
        pos: Pos,
    ) -> Result<(), ConvertError> {
        let ctx = match arg {
            Some(p) => format!(" {}", self.pipeline(p, pos)?.param()),
            None => String::new(),
        };
        self.out
            .push_str(&format!("{{{{> {}{ctx}}}}}", partial_name(name)));
        Ok(())
    }
}

/// A template name as a handlebars partial name.
pub(super) fn partial_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
