//! What is wrong with a TOML file, said the way `stepgate check` says it: every problem at
//! once, each as `FILE:LINE: key: what is wrong (what was found)`. The configuration and the
//! users file both report through here, so their lines, key paths and unknown-key messages
//! read alike.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;

/// One thing wrong with a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    /// Dotted key path, e.g. `app[0].upstreams[1]`.
    pub key: String,
    /// What is wrong and what was found.
    pub message: String,
}

/// Every problem found in one file.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub file: PathBuf,
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(
                f,
                "{}:{}: {}: {}",
                self.file.display(),
                p.line,
                p.key,
                p.message
            )?;
        }
        Ok(())
    }
}

/// The 1-based line of a byte offset in `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    let before = text.get(..offset).unwrap_or(text);
    before.matches('\n').count() + 1
}

/// One step of a key path: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

/// Where a key sits in the document, as serde saw it (an unknown key, say).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyPath(Vec<Step>);

impl KeyPath {
    /// A path of table keys (`["users", "alice"]`).
    pub fn keys(keys: &[&str]) -> KeyPath {
        KeyPath(keys.iter().map(|k| Step::Key((*k).to_owned())).collect())
    }

    pub fn of(p: &serde_ignored::Path<'_>) -> KeyPath {
        let mut path = KeyPath::default();
        path.push(p);
        path
    }

    fn push(&mut self, p: &serde_ignored::Path<'_>) {
        use serde_ignored::Path as P;
        match p {
            P::Root => {}
            P::Seq { parent, index } => {
                self.push(parent);
                self.0.push(Step::Index(*index));
            }
            P::Map { parent, key } => {
                self.push(parent);
                // `toml::Spanned<T>` reads its value through this private key; not the user's.
                if key != "$__serde_spanned_private_value" {
                    self.0.push(Step::Key(key.clone()));
                }
            }
            P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
                self.push(parent)
            }
        }
    }

    /// The last key of the path (`leaf` of `a.b.leaf`).
    pub fn leaf(&self) -> &str {
        self.0
            .iter()
            .rev()
            .find_map(|s| match s {
                Step::Key(k) => Some(k.as_str()),
                Step::Index(_) => None,
            })
            .unwrap_or("")
    }

    /// The span of the key (or, failing that, of its value) in the parsed document.
    pub fn span_in(&self, root: &toml_edit::Table) -> Option<Range<usize>> {
        let mut table: &dyn toml_edit::TableLike = root;
        let mut steps = self.0.iter().peekable();
        while let Some(step) = steps.next() {
            let Step::Key(name) = step else { return None };
            let index = match steps.peek() {
                Some(Step::Index(i)) => {
                    let i = *i;
                    steps.next();
                    Some(i)
                }
                _ => None,
            };
            if steps.peek().is_none() && index.is_none() {
                return table
                    .key(name)
                    .and_then(|k| k.span())
                    .or_else(|| table.get(name).and_then(|i| i.span()));
            }
            let item = table.get(name)?;
            table = match (item, index) {
                (toml_edit::Item::ArrayOfTables(a), Some(i)) => a.get(i)?,
                (toml_edit::Item::Table(t), None) => t,
                (toml_edit::Item::Value(toml_edit::Value::InlineTable(t)), None) => t,
                (toml_edit::Item::Value(toml_edit::Value::Array(a)), Some(i)) => match a.get(i)? {
                    toml_edit::Value::InlineTable(t) => t,
                    _ => return None,
                },
                _ => return None,
            };
        }
        None
    }
}

/// `app[0].upstreams[1]`, quoting keys that are not bare TOML keys (`users."a b"`).
impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bare = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        for (i, step) in self.0.iter().enumerate() {
            match step {
                Step::Index(n) => write!(f, "[{n}]")?,
                Step::Key(k) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    if bare(k) {
                        f.write_str(k)?;
                    } else {
                        write!(f, "{k:?}")?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// The problem for an unknown key (found by `serde_ignored`), at its line when it can be found.
pub fn unknown_key(text: &str, doc: Option<&toml_edit::Table>, path: &KeyPath) -> Problem {
    let line = doc
        .and_then(|d| path.span_in(d))
        .map_or(0, |s| line_of(text, s.start));
    Problem {
        line,
        key: path.to_string(),
        message: format!(
            "unknown key, remove it or check its spelling (found `{}`)",
            path.leaf()
        ),
    }
}

/// The key a syntax or type error points at, read from the text around `offset`:
/// `[section].key`, the section for a header line, or `(syntax)`.
pub fn key_in_text(text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("");
    // A header line (`[[rule]]`, or a broken one) is its own section and has no key.
    let header = line.trim_start().starts_with('[');
    let key = line
        .split_once('=')
        .filter(|_| !header)
        .map(|(k, _)| k.trim().to_owned());
    let section = text[..line_start + line.len()]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| {
            let l = l.split('#').next().unwrap_or("").trim();
            l.trim_matches(|c| c == '[' || c == ']').trim().to_owned()
        });
    match (section, key) {
        (Some(s), Some(k)) => format!("{s}.{k}"),
        (None, Some(k)) => k,
        (Some(s), None) => s,
        (None, None) => "(syntax)".to_owned(),
    }
}

/// The dotted key whose value holds `offset`, found in the parsed document (serde's type
/// errors carry only a span).
pub fn key_in_doc(table: &dyn toml_edit::TableLike, offset: usize) -> Option<String> {
    table.iter().find_map(|(key, item)| {
        let inner = item.as_table_like().and_then(|t| key_in_doc(t, offset));
        let here = item.span().filter(|s| s.contains(&offset));
        inner
            .map(|i| format!("{key}.{i}"))
            .or(here.map(|_| key.to_owned()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_render_with_indexes_and_quotes_and_are_found_in_the_document() {
        let text =
            "[[app]]\nid = \"a\"\n\n[[app]]\nid = \"b\"\nupstrams = []\n\n[users.\"a b\"]\nx = 1\n";
        let doc = toml_edit::ImDocument::parse(text.to_owned()).unwrap();
        let path = KeyPath(vec![
            Step::Key("app".into()),
            Step::Index(1),
            Step::Key("upstrams".into()),
        ]);
        assert_eq!(path.to_string(), "app[1].upstrams");
        let problem = unknown_key(text, Some(doc.as_table()), &path);
        assert_eq!(problem.line, 6);
        assert_eq!(
            problem.message,
            "unknown key, remove it or check its spelling (found `upstrams`)"
        );
        let quoted = KeyPath(vec![
            Step::Key("users".into()),
            Step::Key("a b".into()),
            Step::Key("x".into()),
        ]);
        assert_eq!(quoted.to_string(), "users.\"a b\".x");
        assert_eq!(
            quoted
                .span_in(doc.as_table())
                .map(|s| line_of(text, s.start)),
            Some(9)
        );
    }

    #[test]
    fn keys_at_an_offset() {
        let text = "[server]\nthreads = \"two\"\n";
        let offset = text.find("\"two\"").unwrap();
        assert_eq!(key_in_text(text, offset), "server.threads");
        let doc = toml_edit::ImDocument::parse(text.to_owned()).unwrap();
        assert_eq!(
            key_in_doc(doc.as_table(), offset).as_deref(),
            Some("server.threads")
        );
        assert_eq!(key_in_text("[broken", 3), "broken");
    }
}
