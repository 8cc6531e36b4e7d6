//! The policy file as written: serde types for TOML, strict. Spans are kept where an error
//! should point at the file (rule names, `when`, each grant and deny line, durations).

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PolicyFile {
    #[serde(default)]
    pub version: Option<Spanned<i64>>,
    #[serde(default)]
    pub rule: Vec<RuleFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RuleFile {
    pub name: Spanned<String>,
    #[serde(default)]
    pub description: Option<String>,
    pub when: Spanned<String>,
    #[serde(default)]
    pub grant: Vec<Spanned<GrantFile>>,
    #[serde(default)]
    pub deny: Vec<Spanned<DenyFile>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GrantFile {
    pub app: String,
    pub kind: String,
    pub resource: String,
    #[serde(default)]
    pub level: Option<String>,
    #[serde(default)]
    pub sensitive: bool,
    #[serde(default, rename = "for")]
    pub for_: Option<Spanned<String>>,
    #[serde(default)]
    pub until: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DenyFile {
    pub app: String,
    pub kind: String,
    pub resource: String,
}
