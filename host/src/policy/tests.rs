use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::*;
use crate::model::{ConnectorInfo, EntitlementKind};
use crate::people::{Person, PersonStatus, parse_time};

fn at(text: &str) -> DateTime<Utc> {
    parse_time(text).expect("test time")
}

fn kind(name: &str, levels: &[&str]) -> EntitlementKind {
    EntitlementKind {
        name: name.into(),
        description: String::new(),
        levels: levels.iter().map(|l| l.to_string()).collect(),
        read_modify_write: false,
    }
}

fn connector(name: &str, kinds: Vec<EntitlementKind>) -> ConnectorInfo {
    ConnectorInfo {
        name: name.into(),
        version: "0.1.0".into(),
        description: String::new(),
        kinds,
        capabilities: Vec::new(),
    }
}

fn catalog() -> BTreeMap<String, ConnectorInfo> {
    BTreeMap::from([
        (
            "github".to_owned(),
            connector(
                "github",
                vec![
                    kind(
                        "repository",
                        &["read", "triage", "write", "maintain", "admin"],
                    ),
                    kind("team", &["member", "maintainer"]),
                ],
            ),
        ),
        (
            "aws-staging".to_owned(),
            connector("aws-iam", vec![kind("managed-policy", &[])]),
        ),
        (
            "aws-prod".to_owned(),
            connector("aws-iam", vec![kind("managed-policy", &[])]),
        ),
        (
            "slack".to_owned(),
            connector("slack", vec![kind("channel", &[])]),
        ),
    ])
}

fn person(id: &str, name: Option<&str>, attributes: Value, accounts: &[(&str, &str)]) -> Person {
    let Value::Object(attributes) = attributes else {
        panic!("attributes must be an object");
    };
    Person {
        id: id.into(),
        name: name.map(String::from),
        attributes: attributes.into_iter().collect(),
        accounts: accounts
            .iter()
            .map(|(a, s)| (a.to_string(), s.to_string()))
            .collect(),
        status: PersonStatus::Active,
    }
}

fn josh() -> Person {
    person(
        "E1001",
        Some("Josh Park"),
        json!({ "department": "Platform", "title": "Platform Engineer", "level": 3,
                "groups": ["oncall", "eng"], "location": "Berlin",
                "manager": { "id": "E1" } }),
        &[
            ("github", "josh-platform"),
            ("aws-staging", "josh"),
            ("aws-prod", "josh"),
            ("slack", "U0300JOSH1"),
        ],
    )
}

fn parse(text: &str) -> Policy {
    match Policy::parse(text, "policy.toml") {
        Ok(policy) => policy,
        Err(e) => panic!("policy must parse: {e}"),
    }
}

fn problems(err: PolicyError) -> Vec<Problem> {
    match err {
        PolicyError::Invalid { problems, .. } => problems,
        other => panic!("expected Invalid, got {other}"),
    }
}

const EXAMPLE: &str = r#"# optional: version of this file's schema
version = 1

[[rule]]
name = "platform-engineer"
description = "Everything a Platform Engineer needs on day one"
when = '''
person.department == "Platform" && person.title == "Platform Engineer"
'''

[[rule.grant]]
app = "github"
kind = "repository"
resource = "acme/platform-api"
level = "maintain"

[[rule.grant]]
app = "aws-staging"
kind = "managed-policy"
resource = "arn:aws:iam::aws:policy/AdministratorAccess"
sensitive = true
for = "8h"

[[rule.grant]]
app = "slack"
kind = "channel"
resource = "C-platform"
until = "2027-01-31"

[[rule.deny]]
app = "aws-prod"
kind = "managed-policy"
resource = "*"
"#;

#[test]
fn parses_the_documented_example() {
    let policy = parse(EXAMPLE);
    assert_eq!(policy.origin(), "policy.toml");
    let rules = policy.rules();
    assert_eq!(rules.len(), 1);
    let rule = &rules[0];
    assert_eq!(rule.name, "platform-engineer");
    assert_eq!(rule.line, 5);
    assert_eq!(
        rule.description.as_deref(),
        Some("Everything a Platform Engineer needs on day one")
    );
    assert_eq!(
        rule.when,
        "person.department == \"Platform\" && person.title == \"Platform Engineer\"\n"
    );
    assert_eq!(rule.grants.len(), 3);
    assert_eq!(
        rule.grants[0],
        GrantLine {
            target: Target::new("github", "repository", "acme/platform-api"),
            level: Some("maintain".into()),
            sensitive: false,
            time_bound: None,
            line: 11,
        }
    );
    assert!(rule.grants[1].sensitive);
    assert_eq!(
        rule.grants[1].time_bound,
        Some(TimeBound::For(Duration::from_secs(8 * 3600)))
    );
    assert_eq!(
        rule.grants[2].time_bound,
        Some(TimeBound::Until(at("2027-01-31T00:00:00Z")))
    );
    assert_eq!(
        rule.denies,
        [DenyLine {
            pattern: DenyPattern {
                app: "aws-prod".into(),
                kind: "managed-policy".into(),
                resource: ResourcePattern::Any,
            },
            line: 30,
        }]
    );
    policy
        .validate(&catalog())
        .expect("valid against the catalog");
}

#[test]
fn hash_is_sha256_of_the_file_bytes() {
    let text = "[[rule]]\nname = \"a\"\nwhen = \"true\"\n[[rule.grant]]\napp = \"slack\"\nkind = \"channel\"\nresource = \"C1\"\n";
    let policy = parse(text);
    let expected = hex::encode(Sha256::digest(text.as_bytes()));
    assert_eq!(policy.hash(), expected);
    assert_eq!(policy.hash().len(), 64);
    // A comment changes the bytes, so the hash.
    let other = parse(&format!("# changed\n{text}"));
    assert_ne!(other.hash(), policy.hash());
    // Same bytes, same hash.
    assert_eq!(parse(text).hash(), policy.hash());
}

#[test]
fn load_reads_the_file_and_names_a_missing_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("policy.toml");
    std::fs::write(&path, EXAMPLE).expect("write");
    let policy = Policy::load(&path).expect("loads");
    assert_eq!(policy.origin(), path.display().to_string());
    assert_eq!(policy.hash(), parse(EXAMPLE).hash());
    let err = Policy::load(&dir.path().join("nope.toml")).expect_err("missing");
    assert!(
        err.to_string().starts_with("cannot read policy file "),
        "{err}"
    );
}

#[test]
fn unknown_keys_are_rejected_with_their_line() {
    let err = Policy::parse(
        "[[rule]]\nname = \"a\"\nwhen = \"true\"\n\n[[rule.grant]]\napp = \"slack\"\nkind = \"channel\"\nresource = \"C1\"\nsensitiv = true\n",
        "policy.toml",
    )
    .expect_err("unknown key");
    let text = err.to_string();
    assert!(matches!(err, PolicyError::Parse { .. }), "{text}");
    assert!(text.starts_with("policy.toml: "), "{text}");
    assert!(text.contains("line 9"), "{text}");
    assert!(text.contains("sensitiv"), "{text}");
    assert!(text.contains("remove the key"), "{text}");

    let err = Policy::parse("[[rule]]\nname = \"a\"\n", "policy.toml").expect_err("no when");
    assert!(err.to_string().contains("missing field `when`"), "{err}");
}

#[test]
fn every_load_problem_is_reported_at_once() {
    let text = r#"version = 2

[[rule]]
name = "Bad_Name"
when = "true"
[[rule.grant]]
app = "slack"
kind = "channel"
resource = "C1"

[[rule]]
name = "dup"
when = "true"
[[rule.grant]]
app = "slack"
kind = "channel"
resource = "C1"

[[rule]]
name = "dup"
when = "true"

[[rule]]
name = "times"
when = "   "
[[rule.grant]]
app = "aws-staging"
kind = "managed-policy"
resource = "p1"
for = "8h"
until = "2027-01-01"
[[rule.grant]]
app = "aws-staging"
kind = "managed-policy"
resource = "p2"
for = "8 fortnights"
[[rule.grant]]
app = "aws-staging"
kind = "managed-policy"
resource = "p3"
until = "2027-02-30"
[[rule.grant]]
app = "aws-staging"
kind = "managed-policy"
resource = "p4"
for = "0s"

[[rule]]
name = "shapes"
when = "true"
[[rule.grant]]
app = ""
kind = "channel"
resource = "C1"
level = ""
[[rule.grant]]
app = "slack"
kind = "channel"
resource = "*"
[[rule.grant]]
app = "slack"
kind = "channel"
resource = "C2"
[[rule.grant]]
app = "slack"
kind = "channel"
resource = "C2"
[[rule.deny]]
app = "slack"
kind = "channel"
resource = "*"
[[rule.deny]]
app = "slack"
kind = "channel"
resource = "*"
[[rule.deny]]
app = "slack"
kind = ""
resource = "C9"
"#;
    let err = Policy::parse(text, "policy.toml").expect_err("invalid");
    let rendered = err.to_string();
    let problems = problems(err);
    let got: Vec<(Option<usize>, Option<String>, &str)> = problems
        .iter()
        .map(|p| (p.line, p.rule.clone(), p.message.as_str()))
        .collect();
    let expected: &[(usize, Option<&str>, &str)] = &[
        (1, None, "version 2 is not supported"),
        (4, Some("Bad_Name"), "malformed name"),
        (
            20,
            Some("dup"),
            "duplicate name, also used by the rule at line 12",
        ),
        (20, Some("dup"), "no grants or denies"),
        (25, Some("times"), "`when` is empty"),
        (
            30,
            Some("times"),
            "grant of aws-staging managed-policy p1 has both `for` and `until`",
        ),
        (
            36,
            Some("times"),
            "`for = \"8 fortnights\"` is not a duration",
        ),
        (
            41,
            Some("times"),
            "`until = \"2027-02-30\"` is neither a date",
        ),
        (46, Some("times"), "`for` is zero"),
        (51, Some("shapes"), "grant has empty app, level"),
        (
            56,
            Some("shapes"),
            "grant of slack channel *: `*` is only for denies",
        ),
        (
            64,
            Some("shapes"),
            "grants slack channel C2 twice (also at line 60)",
        ),
        (
            68,
            Some("shapes"),
            "denies slack channel *, which it grants at line 56",
        ),
        (
            68,
            Some("shapes"),
            "denies slack channel *, which it grants at line 60",
        ),
        (
            68,
            Some("shapes"),
            "denies slack channel *, which it grants at line 64",
        ),
        (
            72,
            Some("shapes"),
            "denies slack channel * twice (also at line 68)",
        ),
        (
            72,
            Some("shapes"),
            "denies slack channel *, which it grants at line 56",
        ),
        (
            72,
            Some("shapes"),
            "denies slack channel *, which it grants at line 60",
        ),
        (
            72,
            Some("shapes"),
            "denies slack channel *, which it grants at line 64",
        ),
        (76, Some("shapes"), "deny has empty kind"),
    ];
    assert_eq!(got.len(), expected.len(), "{rendered}");
    for (got, want) in got.iter().zip(expected) {
        assert_eq!(got.0, Some(want.0), "{got:?} vs {want:?}");
        assert_eq!(got.1.as_deref(), want.1, "{got:?} vs {want:?}");
        assert!(got.2.starts_with(want.2), "{got:?} vs {want:?}");
    }
    assert!(
        rendered.starts_with("policy.toml: 20 problems:\n  policy.toml:1:11: version 2"),
        "{rendered}"
    );
    assert!(
        rendered.contains("\n  policy.toml:4: rule `Bad_Name`: malformed name"),
        "{rendered}"
    );
    // `for` problems point at the value.
    assert_eq!(problems[6].column, Some(7));
}

#[test]
fn a_policy_needs_rules() {
    let err = Policy::parse("version = 1\n", "policy.toml").expect_err("no rules");
    assert_eq!(
        err.to_string(),
        "policy.toml: no rules: add [[rule]] tables with name, when and grants or denies"
    );
}

#[test]
fn cel_syntax_error_is_placed_in_the_policy_file() {
    // The error is on the second line of the `when` (file line 5): the second `)`.
    let text = "[[rule]]\nname = \"oncall\"\nwhen = '''\nperson.department == \"Platform\" &&\n  (person.level >= 3 ))\n'''\n[[rule.grant]]\napp = \"slack\"\nkind = \"channel\"\nresource = \"C1\"\n";
    let err = Policy::parse(text, "policy.toml").expect_err("syntax error");
    let rendered = err.to_string();
    let problems = problems(err);
    assert_eq!(problems.len(), 1, "{rendered}");
    let p = &problems[0];
    assert_eq!(p.rule.as_deref(), Some("oncall"));
    assert_eq!((p.line, p.column), (Some(5), Some(23)), "{rendered}");
    assert!(
        p.message
            .starts_with("syntax error in `when`: Syntax error: extraneous input ')'"),
        "{rendered}"
    );
    assert_eq!(
        rendered.lines().collect::<Vec<_>>()[1..],
        [
            "    |   (person.level >= 3 ))",
            "    |                       ^"
        ]
    );
    assert!(
        rendered.starts_with("policy.toml:5:23: rule `oncall`: syntax error"),
        "{rendered}"
    );
}

#[test]
fn cel_syntax_error_in_a_basic_string_accounts_for_quote_and_escapes() {
    // Column of `$` in the file: `when = "` is 8 characters, then `\"x\" == ` is 9 raw
    // characters for 7 decoded ones.
    let text = "[[rule]]\nname = \"a\"\nwhen = \"\\\"x\\\" == $\"\n[[rule.grant]]\napp = \"slack\"\nkind = \"channel\"\nresource = \"C1\"\n";
    let first = problems(Policy::parse(text, "policy.toml").expect_err("syntax error"));
    assert_eq!((first[0].line, first[0].column), (Some(3), Some(18)));
    assert_eq!(&text.lines().nth(2).expect("line 3")[17..18], "$");

    // A multi-line basic string with a line-ending backslash, error at end of input: the
    // position is the closing delimiter.
    let text = "[[rule]]\nname = \"b\"\nwhen = \"\"\"\n  person.level >= \\\n  \"\"\"\n[[rule.grant]]\napp = \"slack\"\nkind = \"channel\"\nresource = \"C1\"\n";
    let found = problems(Policy::parse(text, "policy.toml").expect_err("syntax error"));
    assert_eq!((found[0].line, found[0].column), (Some(5), Some(3)));
}

#[test]
fn validate_reports_every_catalog_problem() {
    let text = r#"
[[rule]]
name = "a"
when = "true"
[[rule.grant]]
app = "gitlab"
kind = "repository"
resource = "r"
[[rule.grant]]
app = "github"
kind = "repo"
resource = "r"
level = "write"
[[rule.grant]]
app = "github"
kind = "repository"
resource = "r"
level = "owner"
[[rule.grant]]
app = "github"
kind = "repository"
resource = "s"
[[rule.grant]]
app = "slack"
kind = "channel"
resource = "C1"
level = "member"
[[rule.deny]]
app = "aws-dev"
kind = "managed-policy"
resource = "*"
"#;
    let policy = parse(text);
    let err = policy.validate(&catalog()).expect_err("invalid");
    let rendered = err.to_string();
    let problems = problems(err);
    let lines: Vec<_> = problems.iter().map(|p| p.line.unwrap_or(0)).collect();
    assert_eq!(lines, [5, 9, 14, 19, 23, 28], "{rendered}");
    let messages: Vec<_> = problems.iter().map(|p| p.message.as_str()).collect();
    assert_eq!(
        messages[0],
        "unknown app `gitlab` (configured: aws-prod, aws-staging, github, slack): fix the name or add [apps.gitlab] to the config"
    );
    assert_eq!(
        messages[1],
        "app `github` (github connector) has no kind `repo` (its kinds: repository, team): fix the kind"
    );
    assert_eq!(
        messages[2],
        "grant of github repository r has unknown level `owner` (levels of `repository`, lowest first: read, triage, write, maintain, admin): fix the level"
    );
    assert_eq!(
        messages[3],
        "grant of github repository s needs a level: one of read, triage, write, maintain, admin"
    );
    assert_eq!(
        messages[4],
        "grant of slack channel C1 has level `member`, but `channel` in `slack` is presence-only: remove the level"
    );
    assert!(
        messages[5].starts_with("unknown app `aws-dev`"),
        "{rendered}"
    );
    assert!(
        rendered.starts_with("policy.toml: 6 problems:"),
        "{rendered}"
    );

    let err = policy.validate(&BTreeMap::new()).expect_err("no apps");
    assert!(err.to_string().contains("no apps are configured"), "{err}");
}

const EVAL: &str = r#"
[[rule]]
name = "platform"
when = 'person.department == "Platform"'
[[rule.grant]]
app = "github"
kind = "repository"
resource = "acme/platform-api"
level = "write"
[[rule.grant]]
app = "slack"
kind = "channel"
resource = "C-platform"

[[rule]]
name = "seniors"
when = "person.level >= 3"
[[rule.grant]]
app = "github"
kind = "repository"
resource = "acme/platform-api"
level = "maintain"

[[rule]]
name = "oncall"
when = '"oncall" in person.groups'
[[rule.grant]]
app = "github"
kind = "repository"
resource = "acme/platform-api"
level = "triage"
[[rule.grant]]
app = "aws-staging"
kind = "managed-policy"
resource = "break-glass"
sensitive = true
for = "8h"

[[rule]]
name = "team-sre"
when = 'has(person.team) && person.team == "sre"'
[[rule.grant]]
app = "slack"
kind = "channel"
resource = "C-sre"

[[rule]]
name = "by-identity"
when = 'person.id == "E1001" && person.name.startsWith("Josh") && person.manager.id == "E1"'
[[rule.deny]]
app = "aws-prod"
kind = "managed-policy"
resource = "*"
"#;

#[test]
fn evaluate_matches_rules_and_merges_to_the_highest_level() {
    let policy = parse(EVAL);
    let catalog = catalog();
    policy.validate(&catalog).expect("valid");
    let result = policy.evaluate(&josh(), &catalog).expect("evaluates");
    assert_eq!(result.person, "E1001");
    assert_eq!(
        result.matched_rules,
        ["by-identity", "oncall", "platform", "seniors"]
    );
    let repo = &result.grants[&Target::new("github", "repository", "acme/platform-api")];
    assert_eq!(repo.level.as_deref(), Some("maintain"));
    assert_eq!(repo.subject, "josh-platform");
    assert_eq!(repo.rules, ["oncall", "platform", "seniors"]);
    assert!(!repo.sensitive);
    assert_eq!(repo.time_bound, None);

    let glass = &result.grants[&Target::new("aws-staging", "managed-policy", "break-glass")];
    assert!(glass.sensitive);
    assert_eq!(glass.level, None);
    assert_eq!(
        glass.time_bound,
        Some(TimeBound::For(Duration::from_secs(8 * 3600)))
    );
    assert_eq!(glass.subject, "josh");

    let keys: Vec<String> = result.grants.keys().map(|t| t.to_string()).collect();
    assert_eq!(
        keys,
        [
            "aws-staging managed-policy break-glass",
            "github repository acme/platform-api",
            "slack channel C-platform",
        ]
    );
    assert_eq!(
        result.denied,
        [(
            "by-identity".to_owned(),
            DenyPattern {
                app: "aws-prod".into(),
                kind: "managed-policy".into(),
                resource: ResourcePattern::Any,
            }
        )]
    );
}

#[test]
fn has_guards_optional_attributes() {
    let policy = parse(EVAL);
    let mut sre = josh();
    sre.attributes.insert("team".into(), json!("sre"));
    let result = policy.evaluate(&sre, &catalog()).expect("evaluates");
    assert!(result.matched_rules.contains(&"team-sre".to_owned()));
    assert!(
        result
            .grants
            .contains_key(&Target::new("slack", "channel", "C-sre"))
    );
    // Without `team` the guard makes the rule false rather than an error.
    let result = policy.evaluate(&josh(), &catalog()).expect("evaluates");
    assert!(!result.matched_rules.contains(&"team-sre".to_owned()));
}

#[test]
fn lists_and_numbers_work() {
    let policy = parse(EVAL);
    let junior = person(
        "E2",
        None,
        json!({ "department": "Sales", "level": 2, "groups": ["eng"],
                "manager": { "id": "E9" } }),
        &[("github", "e2")],
    );
    let result = policy.evaluate(&junior, &catalog()).expect("evaluates");
    assert!(result.matched_rules.is_empty(), "{result:?}");
    assert!(result.grants.is_empty());
    // Floats compare with ints.
    let mut senior = junior.clone();
    senior.attributes.insert("level".into(), json!(3.5));
    let result = policy.evaluate(&senior, &catalog()).expect("evaluates");
    assert_eq!(result.matched_rules, ["seniors"]);
}

#[test]
fn missing_attribute_is_a_clear_error() {
    let policy = parse(
        "[[rule]]\nname = \"platform-engineer\"\nwhen = 'person.team == \"core\"'\n[[rule.grant]]\napp = \"slack\"\nkind = \"channel\"\nresource = \"C1\"\n",
    );
    let err = policy
        .evaluate(&josh(), &catalog())
        .expect_err("missing attribute");
    assert_eq!(
        err.to_string(),
        "policy.toml: rule `platform-engineer` needs attribute `team`, which person E1001 \
         (Josh Park) does not have: add it to the directory or guard the rule with \
         has(person.team)"
    );
    assert!(matches!(
        err,
        PolicyError::MissingAttribute(ref e) if e.attribute == "team"
    ));

    // `name` is missing for a person without one.
    let policy = parse(
        "[[rule]]\nname = \"n\"\nwhen = 'person.name == \"x\"'\n[[rule.grant]]\napp = \"slack\"\nkind = \"channel\"\nresource = \"C1\"\n",
    );
    let nameless = person("E2", None, json!({}), &[("slack", "U2")]);
    let err = policy.evaluate(&nameless, &catalog()).expect_err("no name");
    assert!(
        err.to_string()
            .contains("needs attribute `name`, which person E2 does not have"),
        "{err}"
    );

    // A key missing inside a nested map is not a missing attribute.
    let policy = parse(
        "[[rule]]\nname = \"m\"\nwhen = 'person.manager.email == \"x\"'\n[[rule.grant]]\napp = \"slack\"\nkind = \"channel\"\nresource = \"C1\"\n",
    );
    let err = policy.evaluate(&josh(), &catalog()).expect_err("nested");
    assert!(matches!(err, PolicyError::Evaluation(_)), "{err}");
    assert!(err.to_string().contains("no key `email`"), "{err}");
}

#[test]
fn non_bool_and_other_evaluation_errors_name_rule_and_person() {
    let policy = parse(
        "[[rule]]\nname = \"dept\"\nwhen = 'person.department'\n[[rule.grant]]\napp = \"slack\"\nkind = \"channel\"\nresource = \"C1\"\n",
    );
    let err = policy.evaluate(&josh(), &catalog()).expect_err("not bool");
    assert_eq!(
        err.to_string(),
        "policy.toml: rule `dept`: `when` gave a string, not a bool, for person E1001 (Josh \
         Park): make it a condition (e.g. compare with ==)"
    );

    let policy = parse(
        "[[rule]]\nname = \"typo\"\nwhen = 'persn.department == \"x\"'\n[[rule.grant]]\napp = \"slack\"\nkind = \"channel\"\nresource = \"C1\"\n",
    );
    let err = policy
        .evaluate(&josh(), &catalog())
        .expect_err("undeclared");
    let text = err.to_string();
    assert!(text.starts_with("policy.toml: rule `typo`: `when` failed for person E1001 (Josh Park): undeclared reference to `persn` (the only variable is `person`)"), "{text}");

    let policy = parse(
        "[[rule]]\nname = \"types\"\nwhen = 'person.level + \"x\" == 1'\n[[rule.grant]]\napp = \"slack\"\nkind = \"channel\"\nresource = \"C1\"\n",
    );
    let err = policy
        .evaluate(&josh(), &catalog())
        .expect_err("type error");
    assert!(matches!(err, PolicyError::Evaluation(_)), "{err}");
}

fn bound_policy(lines: &[(&str, &str, &str)]) -> Policy {
    // One rule per line, all matching, all granting the same repository.
    let mut text = String::new();
    for (i, (level, extra, sensitive)) in lines.iter().enumerate() {
        text.push_str(&format!(
            "[[rule]]\nname = \"r{i}\"\nwhen = \"true\"\n[[rule.grant]]\napp = \"github\"\nkind = \"repository\"\nresource = \"acme/x\"\nlevel = \"{level}\"\nsensitive = {sensitive}\n{extra}\n"
        ));
    }
    parse(&text)
}

fn merged(lines: &[(&str, &str, &str)]) -> DesiredGrant {
    let policy = bound_policy(lines);
    let mut result = policy.evaluate(&josh(), &catalog()).expect("evaluates");
    result
        .grants
        .remove(&Target::new("github", "repository", "acme/x"))
        .expect("granted")
}

#[test]
fn sensitive_is_any_and_time_bounds_take_the_least_restrictive_at_the_winning_level() {
    let hours = |h: u64| Some(TimeBound::For(Duration::from_secs(h * 3600)));

    // Untimed wins at the same level; sensitive if any line is.
    let g = merged(&[("write", "for = \"8h\"", "true"), ("write", "", "false")]);
    assert_eq!((g.time_bound, g.sensitive), (None, true));
    assert_eq!(g.rules, ["r0", "r1"]);

    // The longer `for` wins.
    let g = merged(&[
        ("write", "for = \"8h\"", "false"),
        ("write", "for = \"1d\"", "false"),
    ]);
    assert_eq!((g.time_bound, g.sensitive), (hours(24), false));

    // The later `until` wins; `until` beats `for`.
    let g = merged(&[
        ("write", "until = \"2027-01-31\"", "false"),
        ("write", "until = \"2027-03-01T12:00:00+01:00\"", "false"),
        ("write", "for = \"30d\"", "false"),
    ]);
    assert_eq!(
        g.time_bound,
        Some(TimeBound::Until(at("2027-03-01T11:00:00Z")))
    );

    // A lower level's untimed line does not make the higher level permanent.
    let g = merged(&[("write", "", "false"), ("admin", "for = \"8h\"", "false")]);
    assert_eq!(g.level.as_deref(), Some("admin"));
    assert_eq!(g.time_bound, hours(8));
    assert_eq!(g.rules, ["r0", "r1"]);

    // ... in either order; and a higher level replaces a lower level's bound.
    let g = merged(&[("admin", "for = \"8h\"", "false"), ("write", "", "false")]);
    assert_eq!(
        (g.level.as_deref(), g.time_bound),
        (Some("admin"), hours(8))
    );
    let g = merged(&[("read", "for = \"8h\"", "false"), ("write", "", "false")]);
    assert_eq!((g.level.as_deref(), g.time_bound), (Some("write"), None));
}

#[test]
fn time_bound_expiry_and_display() {
    let verified = at("2027-01-01T10:00:00Z");
    assert_eq!(
        TimeBound::For(Duration::from_secs(8 * 3600)).expires_at(verified),
        at("2027-01-01T18:00:00Z")
    );
    assert_eq!(
        TimeBound::Until(at("2027-01-31")).expires_at(verified),
        at("2027-01-31")
    );
    assert_eq!(
        TimeBound::For(Duration::from_secs(8 * 3600)).to_string(),
        "for 8h"
    );
    assert_eq!(
        TimeBound::Until(at("2027-01-31")).to_string(),
        "until 2027-01-31T00:00:00+00:00"
    );
}

const CONFLICT: &str = r#"
[[rule]]
name = "platform"
when = 'person.department == "Platform"'
[[rule.grant]]
app = "aws-prod"
kind = "managed-policy"
resource = "ReadOnlyAccess"

[[rule]]
name = "no-prod-for-berlin"
when = 'person.location == "Berlin"'
[[rule.deny]]
app = "aws-prod"
kind = "managed-policy"
resource = "*"

[[rule]]
name = "no-admin"
when = "true"
[[rule.deny]]
app = "aws-prod"
kind = "managed-policy"
resource = "AdministratorAccess"
"#;

#[test]
fn grant_matching_another_rules_deny_is_a_conflict() {
    let policy = parse(CONFLICT);
    policy.validate(&catalog()).expect("valid");
    let err = policy.evaluate(&josh(), &catalog()).expect_err("conflict");
    assert_eq!(
        err.to_string(),
        "policy.toml: conflict for person E1001 (Josh Park): rule `platform` grants aws-prod \
         managed-policy ReadOnlyAccess but rule `no-prod-for-berlin` denies aws-prod \
         managed-policy *, so a plan would both grant and revoke it: narrow one rule's \
         `when`, or remove the grant or the deny"
    );
    let PolicyError::Conflict(conflict) = err else {
        panic!("expected Conflict");
    };
    let ConflictError {
        grant_rule,
        deny_rule,
        person,
        target,
        ..
    } = *conflict;
    assert_eq!(
        (grant_rule.as_str(), deny_rule.as_str(), person.as_str()),
        ("platform", "no-prod-for-berlin", "E1001")
    );
    assert_eq!(
        target,
        Target::new("aws-prod", "managed-policy", "ReadOnlyAccess")
    );

    // Not in Berlin: the exact deny does not match the granted resource, no conflict.
    let mut remote = josh();
    remote.attributes.insert("location".into(), json!("Lisbon"));
    let result = policy.evaluate(&remote, &catalog()).expect("no conflict");
    assert_eq!(result.matched_rules, ["no-admin", "platform"]);
    assert_eq!(result.grants.len(), 1);
    assert_eq!(
        result.denied,
        [(
            "no-admin".to_owned(),
            DenyPattern {
                app: "aws-prod".into(),
                kind: "managed-policy".into(),
                resource: ResourcePattern::Exact("AdministratorAccess".into()),
            }
        )]
    );
}

#[test]
fn in_scope_covers_granted_targets_and_deny_patterns() {
    let policy = parse(CONFLICT);
    assert!(policy.in_scope(&Target::new("aws-prod", "managed-policy", "ReadOnlyAccess")));
    // Any resource of a kind denied with `*`.
    assert!(policy.in_scope(&Target::new("aws-prod", "managed-policy", "Anything")));
    assert!(!policy.in_scope(&Target::new(
        "aws-staging",
        "managed-policy",
        "ReadOnlyAccess"
    )));

    let policy = parse(EVAL);
    assert!(policy.in_scope(&Target::new("github", "repository", "acme/platform-api")));
    assert!(!policy.in_scope(&Target::new("github", "repository", "acme/other")));
    assert!(!policy.in_scope(&Target::new("slack", "channel", "C-random")));
    assert!(policy.in_scope(&Target::new("aws-prod", "managed-policy", "X")));
}

#[test]
fn a_grant_in_an_app_the_person_has_no_account_in_is_an_error() {
    let policy = parse(EVAL);
    let mut josh = josh();
    josh.accounts.remove("aws-staging");
    let err = policy.evaluate(&josh, &catalog()).expect_err("no account");
    assert_eq!(
        err.to_string(),
        "policy.toml: rule `oncall` grants aws-staging managed-policy break-glass to person \
         E1001 (Josh Park), who has no `aws-staging` account: add accounts.aws-staging for \
         E1001 to the directory (or a hire or transfer event), or narrow the rule's `when`"
    );
}

#[test]
fn evaluate_against_an_unvalidated_catalog_fails_clearly() {
    let policy = parse(EVAL);
    let mut catalog = catalog();
    catalog.remove("slack");
    let err = policy.evaluate(&josh(), &catalog).expect_err("unknown app");
    assert!(
        err.to_string()
            .starts_with("policy.toml:10: rule `platform`: unknown app `slack`"),
        "{err}"
    );
}

#[test]
fn terminated_people_hold_nothing() {
    let policy = parse(EVAL);
    let mut gone = josh();
    gone.status = PersonStatus::Terminated {
        effective: at("2027-06-30"),
        event: "HR-4901".into(),
    };
    let result = policy.evaluate(&gone, &catalog()).expect("evaluates");
    assert!(result.grants.is_empty());
    assert!(result.matched_rules.is_empty());
    assert!(result.denied.is_empty());
}

#[test]
fn policy_is_shareable_across_threads_and_its_error_is_small() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Policy>();
    // Small enough to wrap in another error without tripping clippy's result_large_err.
    assert!(std::mem::size_of::<PolicyError>() <= 64);
}

/// 25 rules of the shapes real policies have; returns the policy and, for a person built
/// by `scale_person(i)`, the number of rules that should match.
fn scale_policy() -> Policy {
    let mut text = String::new();
    for r in 0..25 {
        let when = match r % 5 {
            0 => format!(
                "person.department == \"dept{r}\" && person.title == \"title{}\"",
                r % 3
            ),
            1 => format!("has(person.team) && person.team == \"team{r}\""),
            2 => format!("\"group{r}\" in person.groups"),
            3 => format!("person.level >= {}", r % 7),
            _ => "person.location == \"Berlin\" || person.employment == \"contractor\"".to_owned(),
        };
        text.push_str(&format!(
            "[[rule]]\nname = \"rule-{r}\"\nwhen = '{when}'\n[[rule.grant]]\napp = \"github\"\nkind = \"repository\"\nresource = \"acme/repo-{}\"\nlevel = \"{}\"\n",
            r % 10,
            ["read", "write", "admin"][r % 3]
        ));
    }
    parse(&text)
}

fn scale_person(i: usize) -> Person {
    let mut attributes = json!({
        "department": format!("dept{}", i % 25),
        "title": format!("title{}", i % 3),
        "level": (i % 7) as i64,
        "groups": [format!("group{}", i % 25), "everyone"],
        "location": if i.is_multiple_of(4) { "Berlin" } else { "Lisbon" },
        "employment": "full-time",
        "email": format!("p{i}@acme.example"),
    });
    if i.is_multiple_of(2) {
        attributes["team"] = json!(format!("team{}", i % 25));
    }
    person(
        &format!("E{i:05}"),
        Some(&format!("Person {i}")),
        attributes,
        &[("github", &format!("gh-{i}"))],
    )
}

/// What `scale_policy` should match for `scale_person(i)`, computed in plain Rust.
fn expected_matches(i: usize) -> Vec<String> {
    let mut names = Vec::new();
    for r in 0..25 {
        let hit = match r % 5 {
            0 => i % 25 == r && i % 3 == r % 3,
            1 => i.is_multiple_of(2) && i % 25 == r,
            2 => i % 25 == r,
            3 => i % 7 >= r % 7,
            _ => i.is_multiple_of(4),
        };
        if hit {
            names.push(format!("rule-{r}"));
        }
    }
    names.sort();
    names
}

#[test]
fn evaluates_thousands_of_people_against_25_rules() {
    let policy = scale_policy();
    let catalog = catalog();
    policy.validate(&catalog).expect("valid");
    let mut total_grants = 0;
    for i in 0..2_000 {
        let person = scale_person(i);
        let result = policy.evaluate(&person, &catalog).expect("evaluates");
        assert_eq!(result.matched_rules, expected_matches(i), "person {i}");
        for grant in result.grants.values() {
            assert_eq!(grant.subject, format!("gh-{i}"));
            // The highest level among the rules granting this repository.
            let best = grant
                .rules
                .iter()
                .map(|r| {
                    let n: usize = r.trim_start_matches("rule-").parse().expect("rule number");
                    n % 3
                })
                .max()
                .expect("some rule");
            assert_eq!(
                grant.level.as_deref(),
                Some(["read", "write", "admin"][best])
            );
        }
        total_grants += result.grants.len();
    }
    assert!(total_grants > 2_000, "{total_grants}");
}
