//! The rules a plugin's `describe` must keep before any other export of it runs.
//!
//! Kind and level names become policy keys, state rows, audit fields and terminal text; a
//! plugin that lists a kind twice, an empty level or 200,000 kinds would make every one of
//! those ambiguous or huge. [`validate`] checks the whole description and names the first
//! rule broken with the offending value (escaped, and cut if long).
//!
//! Must never: accept a description that two honest readers could interpret differently
//! (duplicates, empty names, names that render differently from what they are).

use std::collections::BTreeSet;

use crate::model::ConnectorInfo;
use crate::untrusted::{Shown, is_unsafe};

/// Most entitlement kinds one connector may declare.
pub const MAX_KINDS: usize = 64;
/// Most levels one kind may declare.
pub const MAX_LEVELS: usize = 32;
/// Longest connector, kind or level name, and version.
pub const MAX_NAME_BYTES: usize = 64;
/// Longest description of a connector or a kind.
pub const MAX_DESCRIPTION_BYTES: usize = 1024;

/// Which rule a description broke, with the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "plugin `{plugin}` breaks the contract: {rule}; the plugin is refused (fix its `describe` and rebuild it)"
)]
pub struct ContractViolation {
    pub plugin: String,
    pub rule: String,
}

/// Names may use ASCII letters, digits and `-_.:/`: they are keys in policy files and
/// state, and must render exactly as they are.
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/')
}

/// `value` as a rule shows it: escaped, and at most 80 characters.
fn shown(value: &str) -> String {
    let cut: String = value.chars().take(80).collect();
    let more = if value.chars().count() > 80 {
        "…"
    } else {
        ""
    };
    format!("`{}`{more}", Shown(&cut))
}

fn check_name(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("{what} is empty"));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(format!(
            "{what} {} is {} bytes long, over the {MAX_NAME_BYTES}-byte limit",
            shown(name),
            name.len()
        ));
    }
    if let Some(bad) = name.chars().find(|c| !is_name_char(*c)) {
        return Err(format!(
            "{what} {} contains {}, but names may only use ASCII letters, digits and -_.:/",
            shown(name),
            shown(&bad.to_string())
        ));
    }
    Ok(())
}

fn check_text(what: &str, text: &str, max: usize) -> Result<(), String> {
    if text.len() > max {
        return Err(format!(
            "{what} is {} bytes long, over the {max}-byte limit",
            text.len()
        ));
    }
    // Line breaks are fine in a description; anything that repaints a terminal is not.
    if text.chars().any(|c| c != '\n' && is_unsafe(c)) {
        return Err(format!(
            "{what} {} contains control or bidi characters",
            shown(text)
        ));
    }
    Ok(())
}

/// Checks a connector's description against every rule above.
pub fn validate(plugin: &str, info: &ConnectorInfo) -> Result<(), ContractViolation> {
    check(info).map_err(|rule| ContractViolation {
        plugin: Shown(plugin).to_string(),
        rule,
    })
}

fn check(info: &ConnectorInfo) -> Result<(), String> {
    check_name("the connector name", &info.name)?;
    if info.version.is_empty() || info.version.len() > MAX_NAME_BYTES {
        return Err(format!(
            "the version {} must be 1 to {MAX_NAME_BYTES} bytes",
            shown(&info.version)
        ));
    }
    check_text("the version", &info.version, MAX_NAME_BYTES)?;
    check_text(
        "the connector description",
        &info.description,
        MAX_DESCRIPTION_BYTES,
    )?;
    if info.kinds.is_empty() {
        return Err("it declares no entitlement kinds; declare at least one".into());
    }
    if info.kinds.len() > MAX_KINDS {
        return Err(format!(
            "it declares {} entitlement kinds, over the limit of {MAX_KINDS}",
            info.kinds.len()
        ));
    }
    let mut kinds = BTreeSet::new();
    for kind in &info.kinds {
        check_name("a kind name", &kind.name)?;
        if !kinds.insert(kind.name.as_str()) {
            return Err(format!(
                "kind names must be unique, but {} is declared twice",
                shown(&kind.name)
            ));
        }
        let what = format!("the description of kind {}", shown(&kind.name));
        check_text(&what, &kind.description, MAX_DESCRIPTION_BYTES)?;
        if kind.levels.len() > MAX_LEVELS {
            return Err(format!(
                "kind {} declares {} levels, over the limit of {MAX_LEVELS}",
                shown(&kind.name),
                kind.levels.len()
            ));
        }
        let mut levels = BTreeSet::new();
        for level in &kind.levels {
            check_name(&format!("a level of kind {}", shown(&kind.name)), level)?;
            if !levels.insert(level.as_str()) {
                return Err(format!(
                    "levels must be unique within a kind, but kind {} declares {} twice",
                    shown(&kind.name),
                    shown(level)
                ));
            }
        }
    }
    // Capabilities (0.2.0): each names a declared kind, once; the host acts on them
    // (set-level instead of revoke + grant), so an ambiguous one is refused.
    let mut described = BTreeSet::new();
    for capability in &info.capabilities {
        if !kinds.contains(capability.kind.as_str()) {
            return Err(format!(
                "its capabilities name kind {}, which it does not declare",
                shown(&capability.kind)
            ));
        }
        if !described.insert(capability.kind.as_str()) {
            return Err(format!(
                "capabilities must list each kind once, but {} is listed twice",
                shown(&capability.kind)
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::EntitlementKind;

    fn kind(name: &str, levels: &[&str]) -> EntitlementKind {
        EntitlementKind {
            name: name.into(),
            description: "d".into(),
            levels: levels.iter().map(|l| (*l).to_owned()).collect(),
            read_modify_write: false,
        }
    }

    fn info(kinds: Vec<EntitlementKind>) -> ConnectorInfo {
        ConnectorInfo {
            name: "acme".into(),
            version: "1.0.0".into(),
            description: "Acme wiki spaces.\nSecond line.".into(),
            kinds,
            capabilities: Vec::new(),
        }
    }

    fn rule(kinds: Vec<EntitlementKind>) -> String {
        validate("acme.wasm", &info(kinds))
            .expect_err("must be refused")
            .to_string()
    }

    #[test]
    fn honest_descriptions_pass() {
        let ok = info(vec![
            kind("repository", &["read", "write", "admin"]),
            kind("user-group", &[]),
            kind("permission-set", &[]),
        ]);
        assert_eq!(validate("acme", &ok), Ok(()));
    }

    #[test]
    fn each_rule_is_named_with_the_offending_value() {
        let cases: Vec<(Vec<EntitlementKind>, &str)> = vec![
            (
                vec![kind("space", &[]), kind("space", &[])],
                "`space` is declared twice",
            ),
            (vec![kind("", &[])], "a kind name is empty"),
            (vec![kind("space", &["read", ""])], "is empty"),
            (
                vec![kind("space", &["read", "read"])],
                "declares `read` twice",
            ),
            (vec![kind("sp\x1b[2Jace", &[])], "`sp\\u{1b}[2Jace`"),
            (vec![kind("sp\u{202e}ace", &[])], "\\u{202e}"),
            (vec![kind(&"k".repeat(65), &[])], "65 bytes long"),
            (vec![], "declares no entitlement kinds"),
            (
                (0..200_000).map(|n| kind(&format!("k{n}"), &[])).collect(),
                "200000 entitlement kinds, over the limit of 64",
            ),
            (
                vec![kind("space", &(0..40).map(|_| "x").collect::<Vec<_>>())],
                "40 levels",
            ),
        ];
        for (kinds, expected) in cases {
            let message = rule(kinds);
            assert!(message.contains(expected), "{expected:?} not in {message}");
            assert!(message.contains("acme.wasm"), "{message}");
            assert!(!message.contains('\x1b') && !message.contains('\u{202e}'));
        }
    }

    #[test]
    fn capabilities_must_name_declared_kinds_once() {
        use crate::model::KindCapabilities;
        let capability = |kind: &str| KindCapabilities {
            kind: kind.into(),
            list_grants: true,
            set_level: true,
            usage: false,
        };
        let mut described = info(vec![kind("repository", &["read", "admin"])]);
        described.capabilities = vec![capability("repository")];
        assert_eq!(validate("p", &described), Ok(()));
        described.capabilities = vec![capability("team")];
        let rule = validate("p", &described).expect_err("unknown kind").rule;
        assert!(
            rule.contains("`team`") && rule.contains("does not declare"),
            "{rule}"
        );
        described.capabilities = vec![capability("repository"), capability("repository")];
        let rule = validate("p", &described).expect_err("twice").rule;
        assert!(rule.contains("listed twice"), "{rule}");
    }

    #[test]
    fn descriptions_may_not_carry_terminal_controls() {
        let mut bad = info(vec![kind("space", &[])]);
        bad.description = "nice\x1b]0;title\x07".into();
        let message = validate("acme", &bad).expect_err("refused").to_string();
        assert!(message.contains("control or bidi"), "{message}");
        let mut long = info(vec![kind("space", &[])]);
        long.kinds[0].description = "x".repeat(2000);
        assert!(
            validate("acme", &long)
                .expect_err("refused")
                .to_string()
                .contains("2000 bytes")
        );
    }
}
