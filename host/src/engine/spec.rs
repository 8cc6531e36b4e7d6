//! The actions file `portcullis apply` reads: a TOML list of grants and revokes.
//!
//! ```toml
//! [[actions]]
//! op = "grant"              # or "revoke"
//! app = "github-acme"
//! subject = "josh"          # the app's own id for the person
//! kind = "repository"
//! resource = "acme/platform-api"
//! level = "maintain"        # optional for presence-only kinds
//! reason = "joiner: Platform Engineer"
//! ```
//!
//! Strict: unknown keys, empty fields and a grant and a revoke of the same entitlement
//! for the same subject are errors naming the file, the action and the fix.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use super::{ActionSpec, Op};
use crate::model::{Entitlement, Subject};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionsFile {
    #[serde(default)]
    actions: Vec<ActionLine>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionLine {
    op: Op,
    app: String,
    subject: String,
    #[serde(default)]
    email: Option<String>,
    kind: String,
    resource: String,
    #[serde(default)]
    level: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("cannot read actions file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

impl ActionsFile {
    pub fn load(path: &Path) -> Result<Vec<ActionSpec>, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
            path: path.display().to_string(),
            source,
        })?;
        ActionsFile::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, origin: &str) -> Result<Vec<ActionSpec>, SpecError> {
        let invalid = |message: String| SpecError::Invalid {
            path: origin.to_owned(),
            message,
        };
        let file: ActionsFile =
            toml::from_str(text).map_err(|e| invalid(e.to_string().trim_end().to_owned()))?;
        if file.actions.is_empty() {
            return Err(invalid(
                "no actions: add [[actions]] tables with op, app, subject, kind and resource"
                    .into(),
            ));
        }
        let mut seen: HashMap<(String, String, String, String), (usize, Op)> = HashMap::new();
        let mut specs = Vec::with_capacity(file.actions.len());
        for (index, line) in file.actions.into_iter().enumerate() {
            let number = index + 1;
            for (field, value) in [
                ("app", &line.app),
                ("subject", &line.subject),
                ("kind", &line.kind),
                ("resource", &line.resource),
            ] {
                if value.trim().is_empty() {
                    return Err(invalid(format!("action {number}: `{field}` is empty")));
                }
            }
            let target = (
                line.app.clone(),
                line.subject.clone(),
                line.kind.clone(),
                line.resource.clone(),
            );
            if let Some((other, other_op)) = seen.get(&target)
                && *other_op != line.op
            {
                return Err(invalid(format!(
                    "actions {other} and {number} both {} and {} {} {} for {} on {}: a run cannot do both; remove one",
                    if *other_op == Op::Grant {
                        "grant"
                    } else {
                        "revoke"
                    },
                    if line.op == Op::Grant {
                        "grant"
                    } else {
                        "revoke"
                    },
                    line.kind,
                    line.resource,
                    line.subject,
                    line.app
                )));
            }
            seen.insert(target, (number, line.op));
            specs.push(ActionSpec {
                op: line.op,
                app: line.app,
                subject: Subject {
                    id: line.subject,
                    email: line.email,
                },
                entitlement: Entitlement {
                    kind: line.kind,
                    resource: line.resource,
                    level: line.level,
                },
                reason: line
                    .reason
                    .unwrap_or_else(|| "requested with portcullis apply".into()),
            });
        }
        Ok(specs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str = "[[actions]]\nop = \"grant\"\napp = \"gh\"\nsubject = \"josh\"\nkind = \"repository\"\nresource = \"acme/api\"\nlevel = \"write\"\n";

    #[test]
    fn parses_actions() {
        let specs = ActionsFile::parse(ONE, "a.toml").expect("valid");
        assert_eq!(specs.len(), 1);
        assert_eq!(specs[0].op, Op::Grant);
        assert_eq!(specs[0].entitlement.level.as_deref(), Some("write"));
    }

    #[test]
    fn unknown_keys_name_the_file_and_line() {
        let err = ActionsFile::parse(&format!("{ONE}colour = \"red\"\n"), "a.toml")
            .expect_err("unknown key");
        let text = err.to_string();
        assert!(text.contains("a.toml") && text.contains("colour"), "{text}");
    }

    #[test]
    fn a_grant_and_revoke_of_the_same_thing_conflict() {
        let both = format!("{ONE}{}", ONE.replace("\"grant\"", "\"revoke\""));
        let err = ActionsFile::parse(&both, "a.toml").expect_err("conflict");
        assert!(err.to_string().contains("actions 1 and 2"), "{err}");
    }

    #[test]
    fn empty_files_and_fields_are_refused() {
        assert!(ActionsFile::parse("", "a.toml").is_err());
        assert!(ActionsFile::parse(&ONE.replace("josh", " "), "a.toml").is_err());
    }
}
