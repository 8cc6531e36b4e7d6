//! Checks a run's actions before anything executes, against each app's connector
//! (`describe`): the app is configured, the kind is one of its kinds, the level is one of
//! the kind's levels (required for a grant of a kind with levels, absent for a
//! presence-only kind), app, subject, kind and resource are filled in, and no run both
//! grants and revokes one entitlement for one subject.
//!
//! One set of checks for every front end: an actions file (`ActionsFile::validate`, with
//! the file and each action's line), `engine::run` (with the action's number only) and
//! whatever calls the engine next. Must never: call a connector's write export, or stop at
//! the first problem (an operator fixes a file once, not once per run).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use super::{ActionSpec, Op};
use crate::host::Host;
use crate::model::ConnectorInfo;

/// What actions are checked against: the configured apps and, for each app the actions
/// name, its connector's description or why describing it failed.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    configured: BTreeSet<String>,
    described: BTreeMap<String, Result<ConnectorInfo, String>>,
}

impl Catalog {
    /// Describes each configured app that `actions` name, once each. `describe` is a
    /// read-only export; the host caches its answer, so the run that follows does not ask
    /// again.
    pub async fn describe(host: &Host, actions: &[ActionSpec]) -> Catalog {
        let configured = host.apps().map(|app| app.name.clone()).collect();
        let mut described = BTreeMap::new();
        for spec in actions {
            if host.app(&spec.app).is_some() && !described.contains_key(&spec.app) {
                let info = host
                    .connector_info(&spec.app)
                    .await
                    .map_err(|e| e.to_string());
                described.insert(spec.app.clone(), info);
            }
        }
        Catalog {
            configured,
            described,
        }
    }

    /// A catalog of descriptions already at hand (every app in it configured).
    pub fn from_infos(infos: BTreeMap<String, ConnectorInfo>) -> Catalog {
        Catalog {
            configured: infos.keys().cloned().collect(),
            described: infos
                .into_iter()
                .map(|(app, info)| (app, Ok(info)))
                .collect(),
        }
    }

    /// The connector of `app`, when it is configured and described.
    pub fn info(&self, app: &str) -> Option<&ConnectorInfo> {
        self.described.get(app).and_then(|info| info.as_ref().ok())
    }
}

/// One thing wrong with one action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActionProblem {
    /// The action's number, from 1, in file (or run) order, as `apply` numbers its rows.
    pub action: usize,
    /// The line its `[[actions]]` table starts on, when it came from a file.
    pub line: Option<usize>,
    /// What is wrong and the fix.
    pub message: String,
}

impl ActionProblem {
    fn render(&self, path: Option<&str>) -> String {
        let place = match (path, self.line) {
            (Some(path), Some(line)) => format!("{path}:{line}: "),
            (Some(path), None) => format!("{path}: "),
            (None, _) => String::new(),
        };
        format!("{place}action {}: {}", self.action, self.message)
    }
}

/// Every problem, in the style of the policy's: `a.toml:12: action 3: ...` for one, a
/// count and one indented line each for several; either way, that nothing ran.
pub fn render(path: Option<&str>, problems: &[ActionProblem]) -> String {
    match problems {
        [one] => format!("{}; nothing was executed", one.render(path)),
        many => {
            let mut text = match path {
                Some(path) => format!("{path}: "),
                None => String::new(),
            };
            text.push_str(&format!(
                "{} invalid actions; nothing was executed:",
                many.len()
            ));
            for problem in many {
                text.push_str("\n  ");
                text.push_str(&problem.render(path));
            }
            text
        }
    }
}

/// Checks every action against `catalog`; every problem at once, in action order (the
/// `line` of each is left for the caller that knows the file).
pub fn check(actions: &[ActionSpec], catalog: &Catalog) -> Vec<ActionProblem> {
    let mut problems = Vec::new();
    let mut push = |index: usize, message: String| {
        problems.push(ActionProblem {
            action: index + 1,
            line: None,
            message,
        });
    };
    // Describe failures are reported once per app, on its first action.
    let mut undescribed: BTreeSet<&str> = BTreeSet::new();
    // (app, subject, kind, resource) -> the first action's number and op.
    let mut seen: HashMap<(&str, &str, &str, &str), (usize, Op)> = HashMap::new();

    for (index, spec) in actions.iter().enumerate() {
        let e = &spec.entitlement;
        let empty: Vec<&str> = [
            ("app", spec.app.as_str()),
            ("subject", spec.subject.id.as_str()),
            ("kind", e.kind.as_str()),
            ("resource", e.resource.as_str()),
        ]
        .into_iter()
        .filter(|(_, value)| value.trim().is_empty())
        .map(|(field, _)| field)
        .collect();
        if !empty.is_empty() {
            push(
                index,
                format!(
                    "empty {}: fill {} in",
                    empty
                        .iter()
                        .map(|f| format!("`{f}`"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    if empty.len() == 1 { "it" } else { "them" }
                ),
            );
        }
        let what = format!(
            "{} of {} {} for {} in {}",
            op_name(spec.op),
            e.kind,
            e.resource,
            spec.subject.id,
            spec.app
        );

        if let Some(level) = &e.level
            && level.trim().is_empty()
        {
            push(
                index,
                format!("{what} has an empty `level`: fill it in or remove it"),
            );
        }

        if !spec.app.trim().is_empty() {
            match check_against_connector(spec, catalog, &what) {
                Ok(()) => {}
                Err(Against::Problem(message)) => push(index, message),
                Err(Against::Undescribed(message)) => {
                    if undescribed.insert(&spec.app) {
                        push(index, message);
                    }
                }
            }
        }

        let target = (
            spec.app.as_str(),
            spec.subject.id.as_str(),
            e.kind.as_str(),
            e.resource.as_str(),
        );
        match seen.get(&target) {
            Some(&(other, other_op)) if other_op != spec.op => push(
                index,
                format!(
                    "{what}, which action {other} {}s: a run cannot do both; remove one",
                    op_name(other_op)
                ),
            ),
            Some(_) => {}
            None => {
                seen.insert(target, (index + 1, spec.op));
            }
        }
    }
    problems
}

enum Against {
    Problem(String),
    /// The app could not be described: said once per app.
    Undescribed(String),
}

/// The app, kind and level of one action against its connector.
fn check_against_connector(
    spec: &ActionSpec,
    catalog: &Catalog,
    what: &str,
) -> Result<(), Against> {
    let app = spec.app.as_str();
    let info = match catalog.described.get(app) {
        Some(Ok(info)) => info,
        Some(Err(error)) => {
            return Err(Against::Undescribed(format!(
                "cannot check it (or any action of app `{app}`): describing the app's \
                 connector failed: {error}; fix the app's plugin or config"
            )));
        }
        None if catalog.configured.contains(app) => {
            return Err(Against::Undescribed(format!(
                "app `{app}` was not described: check it against a catalog that describes \
                 every app the actions name"
            )));
        }
        None => {
            let known: Vec<&str> = catalog.configured.iter().map(String::as_str).collect();
            return Err(Against::Problem(if known.is_empty() {
                format!(
                    "unknown app `{app}`: no apps are configured; add [apps.{app}] to the \
                     config"
                )
            } else {
                format!(
                    "unknown app `{app}` (configured: {}): fix the name or add [apps.{app}] \
                     to the config",
                    known.join(", ")
                )
            }));
        }
    };
    let kind_name = spec.entitlement.kind.as_str();
    if kind_name.trim().is_empty() {
        return Ok(());
    }
    let Some(kind) = info.kind(kind_name) else {
        let kinds: Vec<&str> = info.kinds.iter().map(|k| k.name.as_str()).collect();
        return Err(Against::Problem(format!(
            "app `{app}` ({} connector) has no kind `{kind_name}` (its kinds: {}): fix the kind",
            info.name,
            kinds.join(", ")
        )));
    };
    if spec.op == Op::SetLevel && !info.capabilities_of(kind_name).set_level {
        return Err(Against::Problem(format!(
            "{what}: the {} connector cannot change levels of `{kind_name}` in place (it declares no set-level); revoke and grant instead",
            info.name
        )));
    }
    match spec.entitlement.level.as_deref() {
        // A revoke without a level removes whatever level is held.
        None if spec.op != Op::Revoke && !kind.levels.is_empty() => Err(Against::Problem(format!(
            "{what} needs a level: one of {} (lowest first)",
            kind.levels.join(", ")
        ))),
        Some(level) if level.trim().is_empty() => Ok(()),
        Some(level) if kind.levels.is_empty() => Err(Against::Problem(format!(
            "{what} has level `{level}`, but `{kind_name}` in `{app}` is presence-only: \
             remove the level"
        ))),
        Some(level) if kind.rank(level).is_none() => Err(Against::Problem(format!(
            "{what} has unknown level `{level}` (levels of `{kind_name}`, lowest first: {}): \
             fix the level",
            kind.levels.join(", ")
        ))),
        _ => Ok(()),
    }
}

fn op_name(op: Op) -> &'static str {
    op.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Entitlement, EntitlementKind, Subject};

    fn catalog() -> Catalog {
        let kind = |name: &str, levels: &[&str]| EntitlementKind {
            name: name.into(),
            description: String::new(),
            levels: levels.iter().map(|l| (*l).to_owned()).collect(),
            read_modify_write: false,
        };
        let info = |name: &str, kinds| ConnectorInfo {
            name: name.into(),
            version: "1".into(),
            description: String::new(),
            kinds,
            capabilities: Vec::new(),
        };
        let mut github = info(
            "github",
            vec![kind(
                "repository",
                &["read", "triage", "write", "maintain", "admin"],
            )],
        );
        github.capabilities = vec![crate::model::KindCapabilities {
            kind: "repository".into(),
            list_grants: true,
            set_level: true,
            usage: false,
        }];
        Catalog::from_infos(BTreeMap::from([
            ("gh".to_owned(), github),
            (
                "okta".to_owned(),
                info("okta", vec![kind("group-membership", &[])]),
            ),
        ]))
    }

    fn action(op: Op, app: &str, kind: &str, resource: &str, level: Option<&str>) -> ActionSpec {
        ActionSpec {
            op,
            app: app.into(),
            subject: Subject {
                id: "josh".into(),
                email: None,
            },
            entitlement: Entitlement {
                kind: kind.into(),
                resource: resource.into(),
                level: level.map(Into::into),
            },
            reason: "test".into(),
            trigger: Default::default(),
        }
    }

    fn messages(actions: &[ActionSpec]) -> Vec<(usize, String)> {
        check(actions, &catalog())
            .into_iter()
            .map(|p| (p.action, p.message))
            .collect()
    }

    #[test]
    fn valid_actions_pass() {
        let actions = [
            action(Op::Grant, "gh", "repository", "acme/api", Some("maintain")),
            // A revoke needs no level; a presence-only kind takes none.
            action(Op::Revoke, "gh", "repository", "acme/web", None),
            action(Op::Grant, "okta", "group-membership", "00g1", None),
        ];
        assert_eq!(messages(&actions), []);
    }

    #[test]
    fn set_level_needs_the_capability_and_a_level() {
        let ok = action(Op::SetLevel, "gh", "repository", "acme/api", Some("read"));
        assert_eq!(messages(&[ok]), []);
        let problems = messages(&[
            action(Op::SetLevel, "okta", "group-membership", "00g1", None),
            action(Op::SetLevel, "gh", "repository", "acme/api", None),
        ]);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0]
                .1
                .contains("cannot change levels of `group-membership` in place"),
            "{problems:?}"
        );
        assert!(problems[1].1.contains("needs a level"), "{problems:?}");
    }

    #[test]
    fn an_unknown_level_names_the_valid_ones_lowest_first() {
        let problems = messages(&[action(
            Op::Grant,
            "gh",
            "repository",
            "acme/api",
            Some("owner"),
        )]);
        assert_eq!(
            problems,
            [(
                1,
                "grant of repository acme/api for josh in gh has unknown level `owner` (levels \
                 of `repository`, lowest first: read, triage, write, maintain, admin): fix the \
                 level"
                    .to_owned()
            )]
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_action_number() {
        let actions = [
            action(Op::Grant, "gh", "repository", "acme/ok", Some("write")),
            action(Op::Grant, "gitlab", "repository", "acme/api", Some("write")),
            action(Op::Grant, "gh", "repo", "acme/api", Some("write")),
            action(Op::Grant, "gh", "repository", "acme/api", None),
            action(
                Op::Grant,
                "okta",
                "group-membership",
                "00g1",
                Some("member"),
            ),
            action(Op::Grant, "gh", "repository", " ", Some("write")),
            action(Op::Revoke, "gh", "repository", "acme/ok", None),
            action(Op::Grant, "gh", "repository", "acme/x", Some("")),
        ];
        let problems = messages(&actions);
        let numbers: Vec<usize> = problems.iter().map(|(n, _)| *n).collect();
        assert_eq!(numbers, [2, 3, 4, 5, 6, 7, 8], "{problems:#?}");
        let text: Vec<&str> = problems.iter().map(|(_, m)| m.as_str()).collect();
        assert!(
            text[0].contains("unknown app `gitlab` (configured: gh, okta)"),
            "{}",
            text[0]
        );
        assert!(
            text[1].contains("has no kind `repo` (its kinds: repository)"),
            "{}",
            text[1]
        );
        assert!(
            text[2].contains("needs a level: one of read, triage"),
            "{}",
            text[2]
        );
        assert!(
            text[3].contains("is presence-only: remove the level"),
            "{}",
            text[3]
        );
        assert!(text[4].contains("empty `resource`"), "{}", text[4]);
        assert!(
            text[5].contains("which action 1 grants: a run cannot do both"),
            "{}",
            text[5]
        );
        assert!(text[6].contains("empty `level`"), "{}", text[6]);
    }

    #[test]
    fn an_app_that_cannot_be_described_is_reported_once() {
        let mut catalog = catalog();
        catalog
            .described
            .insert("gh".into(), Err("the plugin trapped".into()));
        let actions = [
            action(Op::Grant, "gh", "repository", "acme/a", Some("write")),
            action(Op::Grant, "gh", "repository", "acme/b", Some("write")),
        ];
        let problems = check(&actions, &catalog);
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(
            problems[0].message.contains("the plugin trapped"),
            "{problems:#?}"
        );
    }

    #[test]
    fn rendering_names_file_line_and_action_and_that_nothing_ran() {
        let one = ActionProblem {
            action: 3,
            line: Some(12),
            message: "bad".into(),
        };
        assert_eq!(
            render(Some("a.toml"), std::slice::from_ref(&one)),
            "a.toml:12: action 3: bad; nothing was executed"
        );
        assert_eq!(
            render(None, std::slice::from_ref(&one)),
            "action 3: bad; nothing was executed"
        );
        let two = ActionProblem {
            action: 4,
            line: Some(20),
            message: "worse".into(),
        };
        assert_eq!(
            render(Some("a.toml"), &[one, two]),
            "a.toml: 2 invalid actions; nothing was executed:\n  a.toml:12: action 3: bad\n  \
             a.toml:20: action 4: worse"
        );
    }
}
