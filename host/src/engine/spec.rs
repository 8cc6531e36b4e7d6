//! The actions file `portcullis apply` reads: a TOML list of grants and revokes.
//!
//! ```toml
//! [[actions]]
//! op = "grant"              # or "revoke", or "set-level" where the connector declares it
//! app = "github-acme"
//! subject = "josh"          # the app's own id for the person
//! kind = "repository"
//! resource = "acme/platform-api"
//! level = "maintain"        # optional for presence-only kinds
//! reason = "joiner: Platform Engineer"
//! ```
//!
//! Strict: unknown keys and wrong types are errors naming the file and line (toml's own
//! message). Everything else (empty fields, an unknown app, kind or level, a grant and a
//! revoke of the same entitlement for the same subject) is checked by
//! [`ActionsFile::validate`] against the connectors, every problem at once with the
//! action's number and line, before anything runs.

use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::validate::{self, ActionProblem, Catalog};
use super::{ActionSpec, Op};
use crate::model::{Entitlement, Subject};

/// A parsed actions file: its actions in file order, each with the line it starts on.
#[derive(Debug, Clone)]
pub struct ActionsFile {
    origin: String,
    actions: Vec<ActionSpec>,
    lines: Vec<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    actions: Vec<Spanned<ActionLine>>,
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
    /// Not TOML, not the schema, or no actions at all.
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    /// Actions that cannot run as written, every one of them.
    #[error("{}", validate::render(Some(.path), .problems))]
    Actions {
        path: String,
        problems: Vec<ActionProblem>,
    },
}

impl ActionsFile {
    pub fn load(path: &Path) -> Result<ActionsFile, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
            path: path.display().to_string(),
            source,
        })?;
        ActionsFile::parse(&text, &path.display().to_string())
    }

    /// Parses actions-file text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<ActionsFile, SpecError> {
        let invalid = |message: String| SpecError::Invalid {
            path: origin.to_owned(),
            message,
        };
        let file: RawFile =
            toml::from_str(text).map_err(|e| invalid(e.to_string().trim_end().to_owned()))?;
        if file.actions.is_empty() {
            return Err(invalid(
                "no actions: add [[actions]] tables with op, app, subject, kind and resource"
                    .into(),
            ));
        }
        let mut actions = Vec::with_capacity(file.actions.len());
        let mut lines = Vec::with_capacity(file.actions.len());
        for spanned in file.actions {
            lines.push(line_of(text, spanned.span().start));
            let line = spanned.into_inner();
            actions.push(ActionSpec {
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
                trigger: crate::model::Trigger {
                    source: "actions-file".into(),
                    ..crate::model::Trigger::default()
                },
            });
        }
        Ok(ActionsFile {
            origin: origin.to_owned(),
            actions,
            lines,
        })
    }

    /// Where the file was read from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The actions, in file order.
    pub fn actions(&self) -> &[ActionSpec] {
        &self.actions
    }

    /// The line action `index` (from 0) starts on.
    pub fn line(&self, index: usize) -> Option<usize> {
        self.lines.get(index).copied()
    }

    pub fn into_actions(self) -> Vec<ActionSpec> {
        self.actions
    }

    /// Every problem with the file's actions, checked against `catalog` (see
    /// [`validate::check`]), each with its action's number and line.
    pub fn problems(&self, catalog: &Catalog) -> Vec<ActionProblem> {
        let mut problems = validate::check(&self.actions, catalog);
        for problem in &mut problems {
            problem.line = self.line(problem.action - 1);
        }
        problems
    }

    /// `Ok` when every action can run as written; otherwise every problem at once.
    pub fn validate(&self, catalog: &Catalog) -> Result<(), SpecError> {
        let problems = self.problems(catalog);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(SpecError::Actions {
                path: self.origin.clone(),
                problems,
            })
        }
    }
}

/// The line of byte `offset` of `text`, from 1. toml's span of an `[[actions]]` table
/// starts at its header, the line an operator looks for.
fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).unwrap_or(text).matches('\n').count() + 1
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::model::{ConnectorInfo, EntitlementKind};

    const ONE: &str = "[[actions]]\nop = \"grant\"\napp = \"gh\"\nsubject = \"josh\"\nkind = \"repository\"\nresource = \"acme/api\"\nlevel = \"write\"\n";

    fn catalog() -> Catalog {
        Catalog::from_infos(BTreeMap::from([(
            "gh".to_owned(),
            ConnectorInfo {
                name: "github".into(),
                version: "1".into(),
                description: String::new(),
                kinds: vec![EntitlementKind {
                    name: "repository".into(),
                    description: String::new(),
                    levels: ["read", "write", "maintain"].map(String::from).to_vec(),
                    read_modify_write: false,
                }],
                capabilities: Vec::new(),
            },
        )]))
    }

    #[test]
    fn parses_actions_with_the_line_of_each_header() {
        let text = format!(
            "# comment\n\n{ONE}\n{}",
            ONE.replace("acme/api", "acme/web")
        );
        let file = ActionsFile::parse(&text, "a.toml").expect("valid");
        assert_eq!(file.actions().len(), 2);
        assert_eq!(file.actions()[0].op, Op::Grant);
        assert_eq!(
            file.actions()[0].entitlement.level.as_deref(),
            Some("write")
        );
        assert_eq!(file.actions()[1].entitlement.resource, "acme/web");
        assert_eq!((file.line(0), file.line(1)), (Some(3), Some(11)));
        file.validate(&catalog())
            .expect("valid against the connector");
    }

    #[test]
    fn unknown_keys_name_the_file_and_line() {
        let err = ActionsFile::parse(&format!("{ONE}colour = \"red\"\n"), "a.toml")
            .expect_err("unknown key");
        let text = err.to_string();
        assert!(
            text.contains("a.toml") && text.contains("colour") && text.contains("line 8"),
            "{text}"
        );
    }

    #[test]
    fn empty_files_are_refused() {
        let err = ActionsFile::parse("", "a.toml").expect_err("no actions");
        assert!(err.to_string().contains("no actions"), "{err}");
    }

    #[test]
    fn every_invalid_action_is_reported_with_its_number_and_line() {
        let text = [
            ONE.to_owned(),
            ONE.replace("\"write\"", "\"owner\""),
            ONE.replace("josh", " "),
            ONE.replace("\"grant\"", "\"revoke\""),
        ]
        .join("\n");
        let file = ActionsFile::parse(&text, "a.toml").expect("parses");
        let err = file.validate(&catalog()).expect_err("three problems");
        let SpecError::Actions { problems, .. } = &err else {
            panic!("{err}");
        };
        let places: Vec<(usize, Option<usize>)> =
            problems.iter().map(|p| (p.action, p.line)).collect();
        assert_eq!(places, [(2, Some(9)), (3, Some(17)), (4, Some(25))]);
        let text = err.to_string();
        for wanted in [
            "a.toml: 3 invalid actions; nothing was executed:",
            "a.toml:9: action 2: grant of repository acme/api for josh in gh has unknown level `owner` (levels of `repository`, lowest first: read, write, maintain): fix the level",
            "a.toml:17: action 3: empty `subject`: fill it in",
            "a.toml:25: action 4: revoke of repository acme/api for josh in gh, which action 1 grants: a run cannot do both; remove one",
        ] {
            assert!(text.contains(wanted), "missing {wanted:?} in:\n{text}");
        }
    }
}
