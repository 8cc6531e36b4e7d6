//! The range table against the config structs, the config loader and README.md.

use std::collections::BTreeSet;
use std::path::Path;

use super::*;
use crate::config::ConfigError;

const APP: &str = "[apps.gh]\nplugin = \"github\"\nbase_url = \"https://api.github.com\"\n";

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("portcullis.toml"), Path::new("/tmp"))
}

/// The keys serde gives a section whose value is a number or an unset option: what an
/// operator can write, independent of the hand-written [`Numeric`] lists.
fn serde_numeric_keys(value: serde_json::Value) -> BTreeSet<String> {
    let serde_json::Value::Object(map) = value else {
        panic!("a section serialises to a table: {value}");
    };
    map.into_iter()
        .filter(|(_, v)| v.is_number() || v.is_null())
        .map(|(k, _)| k)
        .collect()
}

fn listed<S: Numeric>(section: &S) -> BTreeSet<String> {
    section
        .numeric()
        .into_iter()
        .map(|(k, _)| k.to_owned())
        .collect()
}

fn rows(section: Section) -> BTreeSet<String> {
    SETTINGS
        .iter()
        .filter(|s| s.section == section)
        .map(|s| s.key.to_owned())
        .collect()
}

#[test]
fn every_numeric_key_has_a_row_and_every_row_a_key() {
    let limits = SandboxLimits::default();
    let all_set: SandboxLimitsOverride =
        serde_json::from_value(serde_json::to_value(&limits).expect("limits serialise"))
            .expect("an override takes every [limits] key");
    let engine = EngineOptions::default();
    let rate = RateLimitConfig::default();
    let schedule = ScheduleConfig::default();
    let hook: HrWebhookConfig =
        toml::from_str("secret = \"env:HR_SECRET\"").expect("a webhook with its defaults");
    // Paths set, so only numbers are left unset-looking.
    let audit = AuditConfig {
        path: Some("audit.jsonl".into()),
        signing_key: Some("audit.key".into()),
        checkpoints: Some("checkpoints.jsonl".into()),
        ..AuditConfig::default()
    };
    for (section, serde, listed) in [
        (
            Section::Limits,
            serde_numeric_keys(serde_json::to_value(&limits).expect("serialise")),
            listed(&limits),
        ),
        (
            Section::Limits,
            serde_numeric_keys(serde_json::to_value(&all_set).expect("serialise")),
            listed(&all_set),
        ),
        (
            Section::Engine,
            serde_numeric_keys(serde_json::to_value(&engine).expect("serialise")),
            listed(&engine),
        ),
        (
            Section::RateLimit,
            serde_numeric_keys(serde_json::to_value(&rate).expect("serialise")),
            listed(&rate),
        ),
        (
            Section::Schedule,
            serde_numeric_keys(serde_json::to_value(&schedule).expect("serialise")),
            listed(&schedule),
        ),
        (
            Section::HrWebhook,
            serde_numeric_keys(serde_json::to_value(&hook).expect("serialise")),
            listed(&hook),
        ),
        (
            Section::Audit,
            serde_numeric_keys(serde_json::to_value(&audit).expect("serialise")),
            listed(&audit),
        ),
    ] {
        assert_eq!(serde, listed, "{section:?}: Numeric impl vs the struct");
        assert_eq!(serde, rows(section), "{section:?}: SETTINGS vs the struct");
    }
    // Every value of a fully set override is reported, so none is skipped unchecked.
    assert!(all_set.numeric().iter().all(|(_, v)| v.is_some()));
    let unique: BTreeSet<(String, &str)> = SETTINGS
        .iter()
        .map(|s| (format!("{:?}", s.section), s.key))
        .collect();
    assert_eq!(unique.len(), SETTINGS.len(), "no key has two rows");
}

#[test]
fn defaults_in_the_table_are_the_real_defaults_and_in_range() {
    let limits = SandboxLimits::default().numeric();
    let engine = EngineOptions::default().numeric();
    let schedule = ScheduleConfig::default().numeric();
    let hook: HrWebhookConfig =
        toml::from_str("secret = \"env:HR_SECRET\"").expect("a webhook with its defaults");
    for (section, values) in [
        (Section::Limits, limits),
        (Section::Engine, engine),
        (Section::Schedule, schedule),
        (Section::HrWebhook, hook.numeric()),
        (Section::Audit, AuditConfig::default().numeric()),
    ] {
        for (key, value) in values {
            let value = value.expect("every [limits] and [engine] key has a default");
            let row = setting(section, key).expect("a row");
            assert_eq!(row.default, value.to_string(), "{section:?}.{key}");
            assert!(
                row.bounds.contains(value),
                "{section:?}.{key} default {value}"
            );
        }
    }
    // And the whole default config loads.
    parse(APP).expect("defaults are valid");
}

#[test]
fn memory_ceiling_is_the_runtimes() {
    assert_eq!(MEMORY_MIB_MAX, 1024);
    assert_eq!(
        setting(Section::Limits, "memory_mib").map(|s| s.bounds),
        Some(Bounds::Int {
            min: 1,
            max: MEMORY_MIB_MAX
        })
    );
}

/// Where one setting goes in a config file, and the value written there.
#[derive(Debug, Clone, Copy)]
enum Place {
    Limits,
    AppLimits,
    Engine,
    RateLimit,
    Schedule,
    HrWebhook,
    Audit,
    Queue,
}

impl Place {
    fn for_section(section: Section) -> &'static [Place] {
        match section {
            Section::Limits => &[Place::Limits, Place::AppLimits],
            Section::Engine => &[Place::Engine],
            Section::RateLimit => &[Place::RateLimit],
            Section::Schedule => &[Place::Schedule],
            Section::HrWebhook => &[Place::HrWebhook],
            Section::Audit => &[Place::Audit],
            Section::Queue => &[Place::Queue],
        }
    }

    fn key(self, key: &str) -> String {
        match self {
            Place::Limits => format!("limits.{key}"),
            Place::AppLimits => format!("apps.gh.limits.{key}"),
            Place::Engine => format!("engine.{key}"),
            Place::RateLimit => format!("apps.gh.rate_limit.{key}"),
            Place::Schedule => format!("server.schedule.{key}"),
            Place::HrWebhook => format!("server.hr_webhook.{key}"),
            Place::Audit => format!("audit.{key}"),
            Place::Queue => format!("queue.{key}"),
        }
    }

    fn config(self, key: &str, value: &str) -> String {
        // The two backoffs must also be in order; pair each with a value that keeps them
        // so, so only the bound under test can fail.
        let companion = match key {
            "backoff_base_ms" => "backoff_max_ms = 3600000\n",
            "backoff_max_ms" => "backoff_base_ms = 1\n",
            "recheck_first_s" => "recheck_max_s = 604800\n",
            "recheck_max_s" => "recheck_first_s = 1\n",
            _ => "",
        };
        match self {
            Place::Limits => format!("[limits]\n{key} = {value}\n{APP}"),
            Place::AppLimits => format!("{APP}[apps.gh.limits]\n{key} = {value}\n"),
            Place::Engine => format!("[engine]\n{key} = {value}\n{companion}{APP}"),
            Place::RateLimit => format!("{APP}[apps.gh.rate_limit]\n{key} = {value}\n"),
            Place::Schedule => format!("[server.schedule]\n{key} = {value}\n{companion}{APP}"),
            Place::HrWebhook => {
                format!("[server.hr_webhook]\nsecret = \"env:HR_SECRET\"\n{key} = {value}\n{APP}")
            }
            Place::Audit => format!("[audit]\n{key} = {value}\n{APP}"),
            Place::Queue => format!("[queue]\n{key} = {value}\n{APP}"),
        }
    }
}

/// Values at each bound (accepted) and just outside it (refused), as TOML literals.
fn cases(bounds: Bounds) -> (Vec<String>, Vec<String>) {
    match bounds {
        Bounds::Int { min, max } => {
            let inside = vec![min.to_string(), max.to_string()];
            let mut outside = vec![(max + 1).to_string()];
            outside.push(if min > 0 {
                (min - 1).to_string()
            } else {
                // Below zero does not fit the field's type: refused by the parser instead.
                "-1".into()
            });
            (inside, outside)
        }
        Bounds::Share { above, max } => (
            vec![format!("{:?}", above + 1e-9), format!("{max:?}")],
            vec![
                format!("{above:?}"),
                format!("{:?}", max + 1e-9),
                "nan".into(),
                "inf".into(),
                "-0.5".into(),
            ],
        ),
    }
}

#[test]
fn every_setting_at_its_bounds_loads_and_just_outside_is_refused_by_name() {
    let mut checked = 0;
    for row in SETTINGS {
        let (inside, outside) = cases(row.bounds);
        for &place in Place::for_section(row.section) {
            let key = place.key(row.key);
            for value in &inside {
                let text = place.config(row.key, value);
                if let Err(e) = parse(&text) {
                    panic!("{key} = {value} is in range, yet refused: {e}\n{text}");
                }
                checked += 1;
            }
            for value in &outside {
                let text = place.config(row.key, value);
                let err = parse(&text)
                    .expect_err(&format!("{key} = {value} is out of range, yet accepted"));
                let message = err.to_string();
                assert!(message.starts_with("portcullis.toml"), "{message}");
                if matches!(err, ConfigError::OutOfRange { .. }) {
                    assert!(message.contains(&key), "names {key}: {message}");
                    let range = format!("must be {} ({})", row.bounds, row.unit);
                    assert!(message.contains(&range), "states {range}: {message}");
                    assert!(
                        message.contains(&format!("{key} = ")),
                        "shows the value: {message}"
                    );
                } else {
                    // Only a negative number for an unsigned field fails in the parser,
                    // whose message quotes the line (so the key) and gives its number.
                    assert_eq!(value, "-1", "{message}");
                    assert!(message.contains(row.key), "{message}");
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 4 * SETTINGS.len(), "{checked} cases");
}

#[test]
fn the_reported_cases_are_refused_with_file_key_value_and_range() {
    for (text, expected) in [
        (
            format!("[limits]\nmemory_mib = 99999999\n{APP}"),
            "portcullis.toml: limits.memory_mib = 99999999 is out of range: must be 1..=1024 \
             (MiB); set a value in that range or remove the key for the default (64)",
        ),
        (
            format!("[limits]\nmemory_mib = 0\n{APP}"),
            "portcullis.toml: limits.memory_mib = 0 is out of range: must be 1..=1024 (MiB)",
        ),
        (
            format!("[engine]\nmax_attempts = 0\n{APP}"),
            "portcullis.toml: engine.max_attempts = 0 is out of range: must be 1..=100 \
             (attempts)",
        ),
        (
            format!("[engine]\nmax_revoke_share = 2.0\n{APP}"),
            "portcullis.toml: engine.max_revoke_share = 2.0 is out of range: must be > 0 and \
             <= 1 (share)",
        ),
        (
            format!("{APP}limits = {{ memory_mib = 0 }}\n"),
            "portcullis.toml: apps.gh.limits.memory_mib = 0 is out of range: must be 1..=1024 \
             (MiB); set a value in that range or remove the key to use the [limits] value",
        ),
        (
            format!("{APP}rate_limit = {{ per_minute = 0 }}\n"),
            "portcullis.toml: apps.gh.rate_limit.per_minute = 0 is out of range: must be \
             1..=600000 (requests); set a value in that range or remove the key for the \
             default (no limit)",
        ),
        (
            format!("[engine]\nbackoff_base_ms = 20000\n{APP}"),
            "portcullis.toml: engine.backoff_base_ms = 20000 is more than \
             engine.backoff_max_ms = 10000",
        ),
    ] {
        let err = parse(&text).expect_err(&text);
        assert!(
            err.to_string().contains(expected),
            "{err}\nwanted: {expected}"
        );
    }
}

#[test]
fn every_out_of_range_setting_is_reported_at_once() {
    let err = parse(&format!(
        "[limits]\nmemory_mib = 0\ncpu_ms = 0\n[engine]\nmax_attempts = 0\n{APP}rate_limit = {{ concurrency = 5000 }}\n"
    ))
    .expect_err("four problems");
    let ConfigError::OutOfRange { problems, .. } = &err else {
        panic!("a range error: {err}");
    };
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "limits.memory_mib",
            "limits.cpu_ms",
            "engine.max_attempts",
            "apps.gh.rate_limit.concurrency"
        ]
    );
    let text = err.to_string();
    assert!(
        text.starts_with(
            "portcullis.toml: 4 settings out of range:\n  portcullis.toml: limits.memory_mib = 0"
        ),
        "{text}"
    );
}

/// README.md's configuration reference carries [`reference_table`] between these markers.
/// `PORTCULLIS_BLESS=1 cargo test -p portcullis --lib ranges` rewrites it after a change.
#[test]
fn readme_lists_every_setting_with_the_same_range() {
    const BEGIN: &str = "<!-- ranges:begin (generated from host/src/ranges.rs) -->\n";
    const END: &str = "<!-- ranges:end -->";
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let readme = std::fs::read_to_string(&path).expect("README.md");
    let (Some(start), Some(end)) = (readme.find(BEGIN), readme.find(END)) else {
        panic!("README.md has no {BEGIN:?} ... {END:?} block");
    };
    let current = &readme[start + BEGIN.len()..end];
    let wanted = reference_table();
    if current != wanted {
        if std::env::var_os("PORTCULLIS_BLESS").is_some() {
            let updated = format!(
                "{}{wanted}{}",
                &readme[..start + BEGIN.len()],
                &readme[end..]
            );
            std::fs::write(&path, updated).expect("rewrite README.md");
        } else {
            panic!(
                "README.md's range table differs from host/src/ranges.rs; run \
                 PORTCULLIS_BLESS=1 cargo test -p portcullis --lib ranges\nwanted:\n{wanted}"
            );
        }
    }
    for row in SETTINGS {
        assert!(
            wanted.contains(&format!("{}` | {} |", row.key, row.bounds)),
            "{}",
            row.key
        );
    }
}
