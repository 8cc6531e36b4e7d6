//! Upgrade review: what a plugin version may do, as a [`Profile`] (contract, imports,
//! kinds and their levels, signer), and whether a new version widens that compared with
//! the version an operator accepted.
//!
//! Widening (anything a reviewer has not seen): a new import, a new kind, a new level of a
//! kind, another contract version, another signer, or losing the signature. Narrowing: an
//! import, kind or level removed. A version that only narrows or keeps is taken (and
//! audited); one that widens waits for `portcullis plugin accept APP`.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::model::ConnectorInfo;
use crate::trust::Signer;

/// What one plugin version may do, as far as a reviewer is concerned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// `portcullis:connector@0.1.0`.
    pub contract: Option<String>,
    pub imports: BTreeSet<String>,
    /// Kind name → its levels, lowest first.
    pub kinds: BTreeMap<String, Vec<String>>,
    /// The signing key that vouched for it, if any.
    pub signer: Option<String>,
}

impl Profile {
    /// The profile of `app`'s current plugin, whose `describe` answered `info`.
    pub fn of(app: &App, info: &ConnectorInfo) -> Profile {
        let contract = app
            .plugin
            .exports
            .iter()
            .find_map(|e| e.strip_prefix(&format!("{}/connector", crate::plugin::CONTRACT_PACKAGE)))
            .map(|version| format!("{}{version}", crate::plugin::CONTRACT_PACKAGE));
        Profile {
            contract,
            imports: app.plugin.imports.iter().cloned().collect(),
            kinds: info
                .kinds
                .iter()
                .map(|k| (k.name.clone(), k.levels.clone()))
                .collect(),
            signer: match &app.signer {
                Signer::Unsigned => None,
                Signer::Trusted { key, .. } | Signer::NotTrusted { key } => Some(key.clone()),
            },
        }
    }
}

/// How a new version differs from the accepted one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Difference {
    /// What it may do that the accepted version could not; non-empty: review needed.
    pub widened: Vec<String>,
    /// What it no longer does.
    pub narrowed: Vec<String>,
}

impl Difference {
    pub fn widens(&self) -> bool {
        !self.widened.is_empty()
    }
}

/// `new` compared with the accepted `old`.
pub fn compare(old: &Profile, new: &Profile) -> Difference {
    let mut d = Difference::default();
    if old.contract != new.contract {
        d.widened.push(format!(
            "contract {} (was {})",
            new.contract.as_deref().unwrap_or("none"),
            old.contract.as_deref().unwrap_or("none")
        ));
    }
    for import in new.imports.difference(&old.imports) {
        d.widened.push(format!("new import {import}"));
    }
    for import in old.imports.difference(&new.imports) {
        d.narrowed.push(format!("import {import} removed"));
    }
    for (kind, levels) in &new.kinds {
        match old.kinds.get(kind) {
            None => d
                .widened
                .push(format!("new kind {kind} (levels {})", levels.join(", "))),
            Some(before) => {
                for level in levels.iter().filter(|l| !before.contains(l)) {
                    d.widened.push(format!("kind {kind} gains level {level}"));
                }
                for level in before.iter().filter(|l| !levels.contains(l)) {
                    d.narrowed.push(format!("kind {kind} loses level {level}"));
                }
            }
        }
    }
    for kind in old.kinds.keys().filter(|k| !new.kinds.contains_key(*k)) {
        d.narrowed.push(format!("kind {kind} removed"));
    }
    match (&old.signer, &new.signer) {
        (a, b) if a == b => {}
        (None, Some(key)) => d.widened.push(format!("new signer {key} (was unsigned)")),
        (Some(was), Some(key)) => d.widened.push(format!("new signer {key} (was {was})")),
        (Some(was), None) => d.widened.push(format!("no longer signed (was {was})")),
        (None, None) => {}
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(imports: &[&str], kinds: &[(&str, &[&str])], signer: Option<&str>) -> Profile {
        Profile {
            contract: Some("portcullis:connector@0.1.0".into()),
            imports: imports.iter().map(|s| (*s).to_owned()).collect(),
            kinds: kinds
                .iter()
                .map(|(k, l)| ((*k).to_owned(), l.iter().map(|s| (*s).to_owned()).collect()))
                .collect(),
            signer: signer.map(str::to_owned),
        }
    }

    #[test]
    fn new_imports_kinds_levels_and_signers_widen_removals_narrow() {
        let old = profile(
            &["http", "log"],
            &[("repo", &["read", "write"])],
            Some("k1"),
        );
        assert_eq!(compare(&old, &old), Difference::default());

        let narrower = profile(&["http"], &[("repo", &["read"])], Some("k1"));
        let d = compare(&old, &narrower);
        assert!(!d.widens(), "{d:?}");
        assert_eq!(
            d.narrowed,
            vec!["import log removed", "kind repo loses level write"]
        );

        let wider = profile(
            &["http", "log", "secrets"],
            &[("repo", &["read", "write", "admin"]), ("team", &["member"])],
            Some("k2"),
        );
        let d = compare(&old, &wider);
        assert_eq!(
            d.widened,
            vec![
                "new import secrets",
                "kind repo gains level admin",
                "new kind team (levels member)",
                "new signer k2 (was k1)",
            ]
        );
        let unsigned = profile(&["http", "log"], &[("repo", &["read", "write"])], None);
        assert_eq!(
            compare(&old, &unsigned).widened,
            vec!["no longer signed (was k1)"]
        );
        assert_eq!(
            compare(&unsigned, &old).widened,
            vec!["new signer k1 (was unsigned)"]
        );
        let mut next_contract = old.clone();
        next_contract.contract = Some("portcullis:connector@0.2.0".into());
        assert!(compare(&old, &next_contract).widens());
    }
}
