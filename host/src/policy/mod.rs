//! Policy: rules over people, written in TOML with CEL conditions, that say which grants
//! each person should hold and which they must never hold.
//!
//! # The policy file
//!
//! ```toml
//! version = 1                                # optional; 1 is the only version
//!
//! [[rule]]
//! name = "platform-engineer"                 # required, unique, [a-z0-9][a-z0-9-]*
//! description = "Everything a Platform Engineer needs on day one"   # optional
//! when = '''
//! person.department == "Platform" && person.title == "Platform Engineer"
//! '''
//!
//! [[rule.grant]]
//! app = "github"                             # an app instance, as in [apps.NAME] of the config
//! kind = "repository"                        # one of the app's entitlement kinds
//! resource = "acme/platform-api"
//! level = "maintain"                         # required for kinds with levels, refused for
//!                                            # presence-only kinds
//!
//! [[rule.grant]]
//! app = "aws-staging"
//! kind = "managed-policy"
//! resource = "arn:aws:iam::aws:policy/AdministratorAccess"
//! sensitive = true                           # granted only after an approval
//! for = "8h"                                 # revoked 8h after it is verified
//! # until = "2027-01-31"                     # or: revoked at this time (not with `for`)
//!
//! [[rule.deny]]                              # must never be held by people this rule matches
//! app = "aws-prod"
//! kind = "managed-policy"
//! resource = "*"                             # "*" = any resource of that kind
//! ```
//!
//! ## `when`
//!
//! A [CEL](https://github.com/google/cel-spec) expression over `person`, a map of the
//! person's directory attributes plus `id` and `name`. It must evaluate to a bool; write
//! `when = "true"` for a rule that matches everyone. Attributes keep their JSON types:
//! strings, numbers (`person.level >= 3`), lists (`"oncall" in person.groups`), nested
//! objects (`person.manager.id == "E1"`), bools.
//!
//! Reading an attribute a person does not have is an error, not `false`, so a typo in an
//! attribute name cannot silently revoke access. Where an attribute is optional, guard it:
//! `has(person.team) && person.team == "sre"`.
//!
//! Every `when` is compiled when the file is loaded; a syntax error names the rule and
//! its line and column in the policy file.
//!
//! ## Grants
//!
//! Each `[[rule.grant]]` line names one entitlement: `app`, `kind`, `resource` and, for
//! kinds with levels, `level`. Optional: `sensitive = true` (needs an approval before it is
//! granted), and at most one of `for` (a duration: `"30m"`, `"8h"`, `"7d"`, `"1week"`,
//! counted from when the grant is verified) and `until` (a date, `2027-01-31` meaning
//! 00:00 UTC that day, or an RFC 3339 time).
//!
//! When several matching rules grant the same (app, kind, resource) to a person, they merge
//! into one desired grant: the highest level wins (in the kind's order, lowest first, as
//! the connector describes it); the grant is sensitive if any of the lines is; the time
//! bound is the least restrictive of the lines *at the winning level* (untimed beats any
//! bound, a longer `for` beats a shorter one, a later `until` beats an earlier one, and
//! `until` beats `for`). Lines at lower levels do not extend the winning level's time
//! bound: a rule granting `admin` for 8h next to one granting `write` forever does not
//! make `admin` permanent.
//!
//! A rule must have at least one grant or deny.
//!
//! ## Denies
//!
//! Each `[[rule.deny]]` names an `app`, a `kind` and a `resource` (exact, or `"*"` for any
//! resource of that kind). People the rule matches must never hold a matching grant: the
//! planner revokes it. A person matched by one rule that grants a target and another that
//! denies it is a conflict, reported with both rule names, the person and the target.
//!
//! ## Checks
//!
//! Loading rejects unknown keys, malformed names, duplicate names, rules with no grants or
//! denies, `for` with `until`, malformed durations and times, empty fields, `*` in a
//! grant, the same target granted or denied twice in one rule, and a rule that denies what
//! it grants, all at once. [`Policy::validate`] then checks the file against the
//! connectors: every app configured, every kind known to its connector, every level one of
//! the kind's levels.
//!
//! The policy's hash ([`Policy::hash`], sha256 of the file's bytes) is recorded with every
//! decision made from it.

mod cel;
mod schema;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ::cel::{Env, Program};
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::{ConnectorInfo, EntitlementKind};
use crate::people::{Person, parse_time, person_label};

use self::cel::{EvalFailure, Evaluator};
use self::schema::{DenyFile, GrantFile, PolicyFile};

/// Re-exported: the policy speaks in targets, and this is where the contract first put it.
pub use crate::model::Target;

/// The only policy file version this build knows.
pub const POLICY_VERSION: i64 = 1;

/// A loaded policy: every rule compiled and checked.
pub struct Policy {
    origin: String,
    hash: String,
    rules: Vec<Rule>,
    env: Arc<Env>,
    /// Every target some rule grants, for [`Policy::in_scope`].
    granted: HashSet<Target>,
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("origin", &self.origin)
            .field("hash", &self.hash)
            .field("rules", &self.rules)
            .finish_non_exhaustive()
    }
}

/// One `[[rule]]`.
#[derive(Debug)]
pub struct Rule {
    pub name: String,
    pub description: Option<String>,
    /// The CEL source, as decoded from the file.
    pub when: String,
    /// Line of the rule's `name` in the file.
    pub line: usize,
    pub grants: Vec<GrantLine>,
    pub denies: Vec<DenyLine>,
    program: Program,
    /// Top-level attributes `when` reads (`person.x`), to tell a missing attribute from a
    /// key missing inside one.
    attributes: BTreeSet<String>,
}

/// One `[[rule.grant]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantLine {
    pub target: Target,
    pub level: Option<String>,
    pub sensitive: bool,
    pub time_bound: Option<TimeBound>,
    /// Line of the `[[rule.grant]]` in the file.
    pub line: usize,
}

/// One `[[rule.deny]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenyLine {
    pub pattern: DenyPattern,
    /// Line of the `[[rule.deny]]` in the file.
    pub line: usize,
}

/// Grants that must never be held: one kind in one app, one resource or all of them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DenyPattern {
    pub app: String,
    pub kind: String,
    pub resource: ResourcePattern,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResourcePattern {
    /// `resource = "*"`.
    Any,
    Exact(String),
}

impl DenyPattern {
    pub fn matches(&self, target: &Target) -> bool {
        self.app == target.app
            && self.kind == target.kind
            && match &self.resource {
                ResourcePattern::Any => true,
                ResourcePattern::Exact(resource) => *resource == target.resource,
            }
    }
}

impl fmt::Display for DenyPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.resource {
            ResourcePattern::Any => write!(f, "{} {} *", self.app, self.kind),
            ResourcePattern::Exact(resource) => write!(f, "{} {} {resource}", self.app, self.kind),
        }
    }
}

/// When a time-bound grant is revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TimeBound {
    /// This long after the grant is verified.
    For(Duration),
    /// At this time.
    Until(DateTime<Utc>),
}

impl TimeBound {
    /// When a grant verified at `verified_at` expires.
    pub fn expires_at(&self, verified_at: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            TimeBound::For(duration) => TimeDelta::from_std(*duration)
                .ok()
                .and_then(|d| verified_at.checked_add_signed(d))
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
            TimeBound::Until(at) => *at,
        }
    }

    /// The less restrictive of two bounds: the longer `for`, the later `until`; `until`
    /// over `for`, which cannot be compared without knowing when the grant is verified
    /// (an `until` is usually a contract end date, a `for` a short break-glass window).
    fn least_restrictive(a: TimeBound, b: TimeBound) -> TimeBound {
        match (a, b) {
            (TimeBound::For(x), TimeBound::For(y)) => TimeBound::For(x.max(y)),
            (TimeBound::Until(x), TimeBound::Until(y)) => TimeBound::Until(x.max(y)),
            (until @ TimeBound::Until(_), TimeBound::For(_))
            | (TimeBound::For(_), until @ TimeBound::Until(_)) => until,
        }
    }
}

impl fmt::Display for TimeBound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimeBound::For(d) => write!(f, "for {}", humantime::format_duration(*d)),
            TimeBound::Until(at) => write!(f, "until {}", at.to_rfc3339()),
        }
    }
}

/// What the policy wants one person to hold on one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredGrant {
    pub target: Target,
    /// The highest of the matching rules' levels (kind order); none for presence-only kinds.
    pub level: Option<String>,
    /// The person's account in the app: `person.accounts[app]`.
    pub subject: String,
    /// Every rule that grants this target, at any level, sorted.
    pub rules: Vec<String>,
    /// Any matching grant line is marked sensitive.
    pub sensitive: bool,
    /// Least restrictive bound of the lines at the winning level; none = untimed.
    pub time_bound: Option<TimeBound>,
}

/// Everything the policy says about one person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonPolicy {
    pub person: String,
    pub grants: BTreeMap<Target, DesiredGrant>,
    /// Rules whose `when` is true for the person, sorted.
    pub matched_rules: Vec<String>,
    /// The deny lines of the matched rules, by rule name then file order.
    pub denied: Vec<(String, DenyPattern)>,
}

/// One problem in a policy file, placed where it can be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub rule: Option<String>,
    pub message: String,
    /// The file line, shown with a caret under `column` (CEL syntax errors).
    pub snippet: Option<String>,
}

impl Problem {
    fn at(line: usize, rule: &str, message: String) -> Problem {
        Problem {
            line: Some(line),
            column: None,
            rule: Some(rule.to_owned()),
            message,
            snippet: None,
        }
    }

    fn render(&self, path: &str) -> String {
        let mut text = path.to_owned();
        if let Some(line) = self.line {
            text.push_str(&format!(":{line}"));
            if let Some(column) = self.column {
                text.push_str(&format!(":{column}"));
            }
        }
        text.push_str(": ");
        if let Some(rule) = &self.rule {
            text.push_str(&format!("rule `{rule}`: "));
        }
        text.push_str(&self.message);
        if let (Some(snippet), Some(column)) = (&self.snippet, self.column) {
            text.push_str(&format!("\n    | {snippet}\n    | {:>column$}", "^"));
        }
        text
    }
}

fn render_problems(path: &str, problems: &[Problem]) -> String {
    match problems {
        [one] => one.render(path),
        many => {
            let mut text = format!("{path}: {} problems:", many.len());
            for problem in many {
                text.push_str("\n  ");
                text.push_str(&problem.render(path).replace('\n', "\n  "));
            }
            text
        }
    }
}

/// A policy that cannot be used, or cannot be applied to a person; always naming the file,
/// the rule and person where there is one, and the fix.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy file {path}: {source}; check the path")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// Not TOML, or not the policy schema (toml's message has the line and column).
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    /// Every problem found loading the file, or checking it against the connectors.
    #[error("{}", render_problems(.path, .problems))]
    Invalid {
        path: String,
        problems: Vec<Problem>,
    },
    /// A `when` reads an attribute the person does not have.
    #[error(transparent)]
    MissingAttribute(Box<MissingAttributeError>),
    /// A `when` gave something other than a bool.
    #[error(transparent)]
    NotBool(Box<NotBoolError>),
    /// A `when` failed some other way (type mismatch, undeclared variable, ...).
    #[error(transparent)]
    Evaluation(Box<EvaluationError>),
    /// A matching rule grants in an app the person has no account in.
    #[error(transparent)]
    MissingAccount(Box<MissingAccountError>),
    /// Two rules matching the same person grant and deny the same target.
    #[error(transparent)]
    Conflict(Box<ConflictError>),
}

// The per-person errors are boxed so `Result<_, PolicyError>` (and errors wrapping it)
// stay small: clippy's result_large_err, and a cheap `Ok` path in the planner's loop.

/// A `when` reads an attribute the person does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{path}: rule `{rule}` needs attribute `{attribute}`, which person {} does not have: \
     add it to the directory or guard the rule with has(person.{attribute})",
    person_label(.person, .person_name.as_deref())
)]
pub struct MissingAttributeError {
    pub path: String,
    pub rule: String,
    pub attribute: String,
    pub person: String,
    pub person_name: Option<String>,
}

/// A `when` gave something other than a bool.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{path}: rule `{rule}`: `when` gave a {got}, not a bool, for person {}: make it a \
     condition (e.g. compare with ==)",
    person_label(.person, .person_name.as_deref())
)]
pub struct NotBoolError {
    pub path: String,
    pub rule: String,
    pub person: String,
    pub person_name: Option<String>,
    /// The CEL type it gave.
    pub got: String,
}

/// A `when` failed for a person some other way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{path}: rule `{rule}`: `when` failed for person {}: {message}; fix the expression \
     or the person's attributes",
    person_label(.person, .person_name.as_deref())
)]
pub struct EvaluationError {
    pub path: String,
    pub rule: String,
    pub person: String,
    pub person_name: Option<String>,
    pub message: String,
}

/// A matching rule grants in an app the person has no account in (boxed in
/// [`PolicyError`] to keep `Result<_, PolicyError>` small).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{path}: rule `{rule}` grants {target} to person {}, who has no `{}` account: add \
     accounts.{} for {person} to the directory (or a hire or transfer event), or narrow \
     the rule's `when`",
    person_label(.person, .person_name.as_deref()), .target.app, .target.app
)]
pub struct MissingAccountError {
    pub path: String,
    pub rule: String,
    pub person: String,
    pub person_name: Option<String>,
    pub target: Target,
}

/// A grant of one matching rule matches a deny of another, for the same person: a plan
/// would both grant and revoke it (boxed in [`PolicyError`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{path}: conflict for person {}: rule `{grant_rule}` grants {target} but rule \
     `{deny_rule}` denies {pattern}, so a plan would both grant and revoke it: narrow one \
     rule's `when`, or remove the grant or the deny",
    person_label(.person, .person_name.as_deref())
)]
pub struct ConflictError {
    pub path: String,
    pub grant_rule: String,
    pub deny_rule: String,
    pub person: String,
    pub person_name: Option<String>,
    pub target: Target,
    pub pattern: DenyPattern,
}

fn describe_toml_error(e: &toml::de::Error) -> String {
    let mut message = e.to_string().trim_end().to_owned();
    if message.contains("unknown field") {
        message.push_str("\n(remove the key or fix its spelling; see the policy file format)");
    }
    message
}

fn valid_rule_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Checks a `for` or an `until` and turns it into a bound.
fn time_bound(
    text: &str,
    rule: &str,
    grant: &GrantFile,
    problems: &mut Vec<Problem>,
) -> Option<TimeBound> {
    let place = |span: std::ops::Range<usize>| cel::line_col(text, span.start);
    let problem = |(line, column): (usize, usize), message: String| Problem {
        line: Some(line),
        column: Some(column),
        rule: Some(rule.to_owned()),
        message,
        snippet: None,
    };
    match (&grant.for_, &grant.until) {
        (Some(for_), Some(_)) => {
            problems.push(problem(
                place(for_.span()),
                format!(
                    "grant of {} {} {} has both `for` and `until`: keep one",
                    grant.app, grant.kind, grant.resource
                ),
            ));
            None
        }
        (Some(for_), None) => match humantime::parse_duration(for_.get_ref()) {
            Ok(d) if d.is_zero() => {
                problems.push(problem(
                    place(for_.span()),
                    "`for` is zero: give how long the grant lasts, e.g. \"8h\"".into(),
                ));
                None
            }
            Ok(d) if TimeDelta::from_std(d).is_err() => {
                problems.push(problem(
                    place(for_.span()),
                    format!(
                        "`for = \"{}\"` is too long: leave it out for an untimed grant",
                        for_.get_ref()
                    ),
                ));
                None
            }
            Ok(d) => Some(TimeBound::For(d)),
            Err(e) => {
                problems.push(problem(
                    place(for_.span()),
                    format!(
                        "`for = \"{}\"` is not a duration ({e}): write e.g. \"30m\", \"8h\" or \"7d\"",
                        for_.get_ref()
                    ),
                ));
                None
            }
        },
        (None, Some(until)) => match parse_time(until.get_ref()) {
            Some(at) => Some(TimeBound::Until(at)),
            None => {
                problems.push(problem(
                    place(until.span()),
                    format!(
                        "`until = \"{}\"` is neither a date (2027-01-31) nor an RFC 3339 time \
                         (2027-01-31T18:00:00Z): fix it",
                        until.get_ref()
                    ),
                ));
                None
            }
        },
        (None, None) => None,
    }
}

fn empty_fields<'a>(fields: &[(&'a str, &str)]) -> Vec<&'a str> {
    fields
        .iter()
        .filter(|(_, value)| value.trim().is_empty())
        .map(|(name, _)| *name)
        .collect()
}

impl Policy {
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: origin.clone(),
            source,
        })?;
        Policy::parse(&text, &origin)
    }

    /// Parses, checks and compiles policy text; `origin` names it in errors. Every problem
    /// is reported at once.
    pub fn parse(text: &str, origin: &str) -> Result<Policy, PolicyError> {
        let file: PolicyFile = toml::from_str(text).map_err(|e| PolicyError::Parse {
            path: origin.to_owned(),
            message: describe_toml_error(&e),
        })?;
        let env = Arc::new(Env::stdlib());
        let mut problems = Vec::new();

        if let Some(version) = &file.version
            && *version.get_ref() != POLICY_VERSION
        {
            let (line, column) = cel::line_col(text, version.span().start);
            problems.push(Problem {
                line: Some(line),
                column: Some(column),
                rule: None,
                message: format!(
                    "version {} is not supported: this portcullis knows version \
                     {POLICY_VERSION}; upgrade portcullis or write version = {POLICY_VERSION}",
                    version.get_ref()
                ),
                snippet: None,
            });
        }
        if file.rule.is_empty() {
            problems.push(Problem {
                line: None,
                column: None,
                rule: None,
                message: "no rules: add [[rule]] tables with name, when and grants or denies"
                    .into(),
                snippet: None,
            });
        }

        let mut rules = Vec::new();
        let mut names: HashMap<String, usize> = HashMap::new();
        for raw in file.rule {
            let name = raw.name.get_ref().clone();
            let line = cel::line_col(text, raw.name.span().start).0;
            let before = problems.len();
            if !valid_rule_name(&name) {
                problems.push(Problem::at(
                    line,
                    &name,
                    "malformed name: use lowercase letters, digits and dashes, starting with a \
                     letter or digit (e.g. platform-engineer)"
                        .into(),
                ));
            }
            if let Some(first) = names.get(&name) {
                problems.push(Problem::at(
                    line,
                    &name,
                    format!("duplicate name, also used by the rule at line {first}: rename one"),
                ));
            } else {
                names.insert(name.clone(), line);
            }
            if raw.grant.is_empty() && raw.deny.is_empty() {
                problems.push(Problem::at(
                    line,
                    &name,
                    "no grants or denies: add [[rule.grant]] or [[rule.deny]] tables, or remove \
                     the rule"
                        .into(),
                ));
            }

            let program = if raw.when.get_ref().trim().is_empty() {
                let (line, column) = cel::line_col(text, raw.when.span().start);
                problems.push(Problem {
                    line: Some(line),
                    column: Some(column),
                    rule: Some(name.clone()),
                    message: "`when` is empty: write a condition, or \"true\" to match everyone"
                        .into(),
                    snippet: None,
                });
                None
            } else {
                match cel::compile(&env, raw.when.get_ref(), text, raw.when.span()) {
                    Ok(program) => Some(program),
                    Err(errors) => {
                        for e in errors {
                            problems.push(Problem {
                                line: Some(e.line),
                                column: Some(e.column),
                                rule: Some(name.clone()),
                                message: format!(
                                    "syntax error in `when`: {}; fix the CEL expression",
                                    e.message
                                ),
                                snippet: Some(e.snippet),
                            });
                        }
                        None
                    }
                }
            };

            let mut grants: Vec<GrantLine> = Vec::new();
            for spanned in &raw.grant {
                let grant = spanned.get_ref();
                let line = cel::line_col(text, spanned.span().start).0;
                let empty = empty_fields(&[
                    ("app", &grant.app),
                    ("kind", &grant.kind),
                    ("resource", &grant.resource),
                    ("level", grant.level.as_deref().unwrap_or("-")),
                ]);
                if !empty.is_empty() {
                    problems.push(Problem::at(
                        line,
                        &name,
                        format!("grant has empty {}: fill them in", empty.join(", ")),
                    ));
                }
                if grant.resource == "*" {
                    problems.push(Problem::at(
                        line,
                        &name,
                        format!(
                            "grant of {} {} *: `*` is only for denies; grant each resource by name",
                            grant.app, grant.kind
                        ),
                    ));
                }
                let bound = time_bound(text, &name, grant, &mut problems);
                let target = Target::new(&grant.app, &grant.kind, &grant.resource);
                if let Some(other) = grants.iter().find(|g| g.target == target) {
                    problems.push(Problem::at(
                        line,
                        &name,
                        format!(
                            "grants {target} twice (also at line {}): keep one line",
                            other.line
                        ),
                    ));
                }
                grants.push(GrantLine {
                    target,
                    level: grant.level.clone(),
                    sensitive: grant.sensitive,
                    time_bound: bound,
                    line,
                });
            }

            let mut denies: Vec<DenyLine> = Vec::new();
            for spanned in &raw.deny {
                let DenyFile {
                    app,
                    kind,
                    resource,
                } = spanned.get_ref();
                let line = cel::line_col(text, spanned.span().start).0;
                let empty = empty_fields(&[("app", app), ("kind", kind), ("resource", resource)]);
                if !empty.is_empty() {
                    problems.push(Problem::at(
                        line,
                        &name,
                        format!(
                            "deny has empty {}: fill them in (resource = \"*\" for every resource)",
                            empty.join(", ")
                        ),
                    ));
                }
                let pattern = DenyPattern {
                    app: app.clone(),
                    kind: kind.clone(),
                    resource: if resource == "*" {
                        ResourcePattern::Any
                    } else {
                        ResourcePattern::Exact(resource.clone())
                    },
                };
                if let Some(other) = denies.iter().find(|d| d.pattern == pattern) {
                    problems.push(Problem::at(
                        line,
                        &name,
                        format!(
                            "denies {pattern} twice (also at line {}): keep one line",
                            other.line
                        ),
                    ));
                }
                for grant in grants.iter().filter(|g| pattern.matches(&g.target)) {
                    problems.push(Problem::at(
                        line,
                        &name,
                        format!(
                            "denies {pattern}, which it grants at line {}: remove the grant or \
                             the deny",
                            grant.line
                        ),
                    ));
                }
                denies.push(DenyLine { pattern, line });
            }

            if problems.len() > before {
                continue;
            }
            if let Some(program) = program {
                let attributes = cel::person_attributes(&program);
                rules.push(Rule {
                    attributes,
                    name,
                    description: raw.description,
                    when: raw.when.into_inner(),
                    line,
                    grants,
                    denies,
                    program,
                });
            }
        }

        if !problems.is_empty() {
            return Err(PolicyError::Invalid {
                path: origin.to_owned(),
                problems,
            });
        }
        let granted = rules
            .iter()
            .flat_map(|r| r.grants.iter().map(|g| g.target.clone()))
            .collect();
        Ok(Policy {
            origin: origin.to_owned(),
            hash: hex::encode(Sha256::digest(text.as_bytes())),
            rules,
            env,
            granted,
        })
    }

    /// sha256 (hex) of the policy file's bytes.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// Where the policy was read from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The rules, in file order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Checks every grant and deny against the connectors (app name -> what its connector
    /// describes): the app is configured, the kind is one of its kinds, and the level is one
    /// of the kind's levels, given exactly when the kind has levels. Every problem at once.
    pub fn validate(&self, catalog: &BTreeMap<String, ConnectorInfo>) -> Result<(), PolicyError> {
        let mut problems = Vec::new();
        for rule in &self.rules {
            for grant in &rule.grants {
                if let Err(message) = check_grant(catalog, &grant.target, grant.level.as_deref()) {
                    problems.push(Problem::at(grant.line, &rule.name, message));
                }
            }
            for deny in &rule.denies {
                if let Err(message) = find_kind(catalog, &deny.pattern.app, &deny.pattern.kind) {
                    problems.push(Problem::at(deny.line, &rule.name, message));
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(PolicyError::Invalid {
                path: self.origin.clone(),
                problems,
            })
        }
    }

    /// Whether some rule grants `target` or denies something that matches it. The planner
    /// only ever touches grants in scope or recorded as managed.
    pub fn in_scope(&self, target: &Target) -> bool {
        self.granted.contains(target)
            || self
                .rules
                .iter()
                .flat_map(|r| &r.denies)
                .any(|d| d.pattern.matches(target))
    }

    /// What the policy wants `person` to hold and never hold. A terminated person holds
    /// nothing: their result is empty whatever their attributes say.
    pub fn evaluate(
        &self,
        person: &Person,
        catalog: &BTreeMap<String, ConnectorInfo>,
    ) -> Result<PersonPolicy, PolicyError> {
        let mut result = PersonPolicy {
            person: person.id.clone(),
            grants: BTreeMap::new(),
            matched_rules: Vec::new(),
            denied: Vec::new(),
        };
        if !person.is_active() {
            return Ok(result);
        }

        // The person's CEL value is built once and shared by every rule.
        let evaluator = Evaluator::new(self.env.clone(), person);
        let mut matched = Vec::new();
        for rule in &self.rules {
            if evaluator
                .matches(&rule.program)
                .map_err(|failure| self.eval_error(rule, person, failure))?
            {
                matched.push(rule);
            }
        }

        // Per target: the winning rank, and the lines' merged bound at that rank.
        struct Merge {
            rank: usize,
            bound: Option<TimeBound>,
            rules: BTreeSet<String>,
        }
        let mut merges: BTreeMap<Target, Merge> = BTreeMap::new();
        for rule in &matched {
            for line in &rule.grants {
                let target = &line.target;
                let Some(subject) = person.accounts.get(&target.app) else {
                    return Err(PolicyError::MissingAccount(Box::new(MissingAccountError {
                        path: self.origin.clone(),
                        rule: rule.name.clone(),
                        person: person.id.clone(),
                        person_name: person.name.clone(),
                        target: target.clone(),
                    })));
                };
                let kind =
                    check_grant(catalog, target, line.level.as_deref()).map_err(|message| {
                        PolicyError::Invalid {
                            path: self.origin.clone(),
                            problems: vec![Problem::at(line.line, &rule.name, message)],
                        }
                    })?;
                let rank = line
                    .level
                    .as_deref()
                    .and_then(|level| kind.rank(level))
                    .unwrap_or(0);
                match result.grants.get_mut(target) {
                    None => {
                        result.grants.insert(
                            target.clone(),
                            DesiredGrant {
                                target: target.clone(),
                                level: line.level.clone(),
                                subject: subject.clone(),
                                rules: Vec::new(),
                                sensitive: line.sensitive,
                                time_bound: None,
                            },
                        );
                        merges.insert(
                            target.clone(),
                            Merge {
                                rank,
                                bound: line.time_bound,
                                rules: BTreeSet::from([rule.name.clone()]),
                            },
                        );
                    }
                    Some(desired) => {
                        desired.sensitive |= line.sensitive;
                        if let Some(merge) = merges.get_mut(target) {
                            merge.rules.insert(rule.name.clone());
                            if rank > merge.rank {
                                merge.rank = rank;
                                merge.bound = line.time_bound;
                                desired.level = line.level.clone();
                            } else if rank == merge.rank {
                                merge.bound = match (merge.bound, line.time_bound) {
                                    (Some(a), Some(b)) => Some(TimeBound::least_restrictive(a, b)),
                                    _ => None,
                                };
                            }
                        }
                    }
                }
            }
        }
        for (target, merge) in merges {
            if let Some(desired) = result.grants.get_mut(&target) {
                desired.time_bound = merge.bound;
                desired.rules = merge.rules.into_iter().collect();
            }
        }

        for rule in &matched {
            for deny in &rule.denies {
                if let Some(desired) = result
                    .grants
                    .values()
                    .find(|g| deny.pattern.matches(&g.target))
                {
                    return Err(PolicyError::Conflict(Box::new(ConflictError {
                        path: self.origin.clone(),
                        grant_rule: desired.rules.first().cloned().unwrap_or_default(),
                        deny_rule: rule.name.clone(),
                        person: person.id.clone(),
                        person_name: person.name.clone(),
                        target: desired.target.clone(),
                        pattern: deny.pattern.clone(),
                    })));
                }
                result
                    .denied
                    .push((rule.name.clone(), deny.pattern.clone()));
            }
        }
        result.denied.sort_by(|a, b| a.0.cmp(&b.0));
        result.matched_rules = matched.iter().map(|r| r.name.clone()).collect();
        result.matched_rules.sort();
        Ok(result)
    }

    fn eval_error(&self, rule: &Rule, person: &Person, failure: EvalFailure) -> PolicyError {
        let path = self.origin.clone();
        let rule_name = rule.name.clone();
        let person_id = person.id.clone();
        let person_name = person.name.clone();
        match failure {
            EvalFailure::NoSuchKey(attribute)
                if rule.attributes.contains(&attribute)
                    && !person.attributes.contains_key(&attribute)
                    && attribute != "id"
                    && !(attribute == "name" && person.name.is_some()) =>
            {
                PolicyError::MissingAttribute(Box::new(MissingAttributeError {
                    path,
                    rule: rule_name,
                    attribute,
                    person: person_id,
                    person_name,
                }))
            }
            EvalFailure::NoSuchKey(key) => PolicyError::Evaluation(Box::new(EvaluationError {
                path,
                rule: rule_name,
                person: person_id,
                person_name,
                message: format!(
                    "no key `{key}` in a map inside the person's attributes (guard it with has())"
                ),
            })),
            EvalFailure::NotBool(got) => PolicyError::NotBool(Box::new(NotBoolError {
                path,
                rule: rule_name,
                person: person_id,
                person_name,
                got,
            })),
            EvalFailure::Other(message) => PolicyError::Evaluation(Box::new(EvaluationError {
                path,
                rule: rule_name,
                person: person_id,
                person_name,
                message,
            })),
        }
    }
}

/// The kind `app`/`kind` names, or a message listing what is known.
fn find_kind<'c>(
    catalog: &'c BTreeMap<String, ConnectorInfo>,
    app: &str,
    kind: &str,
) -> Result<&'c EntitlementKind, String> {
    let Some(info) = catalog.get(app) else {
        let known: Vec<&str> = catalog.keys().map(String::as_str).collect();
        return Err(if known.is_empty() {
            format!("unknown app `{app}`: no apps are configured; add [apps.{app}] to the config")
        } else {
            format!(
                "unknown app `{app}` (configured: {}): fix the name or add [apps.{app}] to the config",
                known.join(", ")
            )
        });
    };
    info.kind(kind).ok_or_else(|| {
        let kinds: Vec<&str> = info.kinds.iter().map(|k| k.name.as_str()).collect();
        format!(
            "app `{app}` ({} connector) has no kind `{kind}` (its kinds: {}): fix the kind",
            info.name,
            kinds.join(", ")
        )
    })
}

/// The kind of a grant line, after checking its level against the kind's levels.
fn check_grant<'c>(
    catalog: &'c BTreeMap<String, ConnectorInfo>,
    target: &Target,
    level: Option<&str>,
) -> Result<&'c EntitlementKind, String> {
    let kind = find_kind(catalog, &target.app, &target.kind)?;
    match level {
        None if !kind.levels.is_empty() => Err(format!(
            "grant of {target} needs a level: one of {}",
            kind.levels.join(", ")
        )),
        Some(level) if kind.levels.is_empty() => Err(format!(
            "grant of {target} has level `{level}`, but `{}` in `{}` is presence-only: remove \
             the level",
            target.kind, target.app
        )),
        Some(level) if kind.rank(level).is_none() => Err(format!(
            "grant of {target} has unknown level `{level}` (levels of `{}`, lowest first: {}): \
             fix the level",
            target.kind,
            kind.levels.join(", ")
        )),
        _ => Ok(kind),
    }
}

#[cfg(test)]
mod tests;
