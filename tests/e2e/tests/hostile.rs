//! The host against a hostile plugin (tests/fixtures/hostile) beyond the sandbox's own
//! limits: listings that never end, secrets coming back through the host, oversized
//! strings, descriptions that break the contract, and one app's missing secret. Every
//! case ends within its bounds, names its cause, and leaves the other apps working.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use portcullis::audit::{AuditEvent, AuditSink, JsonLinesSink, MemorySink};
use portcullis::config::{AppConfig, Config, SandboxLimitsOverride};
use portcullis::model::{Action, Entitlement, GrantOutcome, GrantQuery, Subject};
use portcullis::secrets::SecretSource;
use portcullis::state::{SqliteStore, StateStore};
use portcullis::{CallError, Host, ListingStop};
use portcullis_e2e::{app, fixtures, host_with, host_with_sink};
use portcullis_simulators::ReflectingOrigin;

/// The injected token. It may reach the origin in the Authorization header the host
/// injects, and nowhere else.
const CANARY: &str = "canary-TOKEN-7c41d9e2b8";
/// A secret the plugin may reveal; it must still never come back out through the host.
const REVEALED: &str = "revealed-KEY-5e09a1f3";

fn evil(base_url: &str, settings: &[(&str, &str)], limits: SandboxLimitsOverride) -> AppConfig {
    let mut evil = app(
        fixtures::HOSTILE,
        base_url,
        &[("token", CANARY), ("api-key", REVEALED)],
    );
    evil.reveal = vec!["api-key".into()];
    evil.settings = settings
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    evil.limits = Some(limits);
    evil
}

fn small_limits() -> SandboxLimitsOverride {
    SandboxLimitsOverride {
        cpu_ms: Some(500),
        memory_mib: Some(32),
        wall_ms: Some(5_000),
        ..SandboxLimitsOverride::default()
    }
}

fn query(kind: &str) -> GrantQuery {
    GrantQuery {
        kind: kind.into(),
        resource: None,
        cursor: None,
    }
}

fn action(kind: &str) -> Action {
    Action {
        subject: Subject {
            id: "mallory".into(),
            email: None,
        },
        entitlement: Entitlement {
            kind: kind.into(),
            resource: "anything".into(),
            level: None,
        },
        idempotency_key: format!("hostile-{kind}"),
        reason: "hostile test".into(),
    }
}

/// A JSON-lines audit trail in a temporary directory (kept alive by the returned guard).
fn trail() -> (tempfile::TempDir, std::path::PathBuf, Arc<dyn AuditSink>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let trail = dir.path().join("audit.jsonl");
    let sink: Arc<dyn AuditSink> = Arc::new(JsonLinesSink::open(&trail).expect("audit opens"));
    (dir, trail, sink)
}

async fn evil_host(limits: SandboxLimitsOverride) -> (Host, MemorySink, ReflectingOrigin) {
    let origin = ReflectingOrigin::start().await.expect("origin starts");
    let (host, audit) = host_with(
        Config::default(),
        vec![("evil", evil(&origin.base_url(), &[], limits))],
    );
    (host, audit, origin)
}

#[tokio::test]
async fn a_repeated_cursor_stops_the_listing_and_keeps_what_was_read() {
    let (host, audit, _origin) = evil_host(small_limits()).await;
    let started = Instant::now();
    let listing = host
        .list_all_grants("evil", &query("list-same-cursor"))
        .await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        matches!(&listing.stopped, Some(ListingStop::RepeatedCursor { page: 2, cursor }) if cursor == "p1"),
        "{:?}",
        listing.stopped
    );
    assert!(!listing.is_complete());
    assert_eq!(listing.grants.len(), 4, "both pages' grants are kept");
    let message = listing.stopped.expect("stopped").to_string();
    assert!(
        message.contains("again") && message.contains("`p1`"),
        "{message}"
    );
    // Two pages, two calls' worth of audit records: nothing grows without bound.
    assert!(audit.records().len() < 20, "{}", audit.records().len());
}

#[tokio::test]
async fn a_cursor_that_grows_every_page_is_refused_at_the_cursor_cap() {
    let (host, _audit, _origin) = evil_host(small_limits()).await;
    let listing = host
        .list_all_grants("evil", &query("list-growing-cursor"))
        .await;
    match &listing.stopped {
        Some(ListingStop::Failed { page, error }) => {
            assert!(*page <= 10, "stopped on page {page}");
            assert!(error.to_string().contains("-byte cursor"), "{error}");
        }
        other => panic!("expected the cursor cap, got {other:?}"),
    }
    assert_eq!(listing.grants.len() as u32, (listing.pages - 1) * 2);
}

#[tokio::test]
async fn an_endless_listing_stops_at_the_page_cap() {
    let limits = SandboxLimitsOverride {
        list_max_pages: Some(40),
        ..small_limits()
    };
    let (host, _audit, _origin) = evil_host(limits).await;
    let listing = host.list_all_grants("evil", &query("list-endless")).await;
    assert_eq!(listing.stopped, Some(ListingStop::PageCap { max: 40 }));
    assert_eq!(listing.pages, 40);
    assert_eq!(listing.grants.len(), 80);
    let message = listing.stopped.expect("stopped").to_string();
    assert!(message.contains("limits.list_max_pages"), "{message}");
}

#[tokio::test]
async fn an_endless_listing_stops_at_its_deadline_with_bounded_memory() {
    let limits = SandboxLimitsOverride {
        list_max_pages: Some(10_000_000),
        list_wall_ms: Some(300),
        ..small_limits()
    };
    let (host, _audit, _origin) = evil_host(limits).await;
    let started = Instant::now();
    let listing = host.list_all_grants("evil", &query("list-endless")).await;
    let elapsed = started.elapsed();
    assert!(
        matches!(
            listing.stopped,
            Some(ListingStop::Deadline { limit_ms: 300, .. })
        ),
        "{:?}",
        listing.stopped
    );
    // Checked between pages: one page at most past the deadline.
    assert!(elapsed < Duration::from_secs(6), "{elapsed:?}");
    assert_eq!(listing.grants.len() as u32, listing.pages * 2);
    let message = listing.stopped.expect("stopped").to_string();
    assert!(message.contains("limits.list_wall_ms"), "{message}");
}

#[tokio::test]
async fn an_oversized_page_is_refused_before_it_is_copied() {
    let (host, _audit, _origin) = evil_host(small_limits()).await;
    let listing = host.list_all_grants("evil", &query("list-huge-page")).await;
    let error = listing
        .first_page_error()
        .expect("page 1 fails")
        .to_string();
    assert!(
        error.contains("10001 grants on one page") && error.contains("10000"),
        "{error}"
    );
}

#[tokio::test]
async fn a_partial_discovery_is_stored_as_partial_and_never_proves_absence() {
    let limits = SandboxLimitsOverride {
        list_max_pages: Some(5),
        ..small_limits()
    };
    let (host, _audit, _origin) = evil_host(limits).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("state.db")).expect("state opens");
    let now = Utc::now();
    let discovery = portcullis::discover::discover(&host, &store, &["evil".into()], None, &[], now)
        .await
        .expect("discovery runs");
    let complete = discovery.complete();
    assert!(complete.contains(&("evil".into(), "ok".into())));
    for partial in ["list-fails-later", "list-same-cursor", "list-endless"] {
        assert!(
            !complete.contains(&("evil".into(), partial.into())),
            "{partial}"
        );
    }
    let listings = store.observed_listings().expect("listings");
    let fails_later = listings
        .iter()
        .find(|l| l.kind == "list-fails-later")
        .expect("the partial listing is recorded");
    assert!(!fails_later.complete);
    let reason = fails_later.reason.as_deref().unwrap_or_default();
    assert!(reason.contains("page 3"), "{reason}");
    assert!(
        listings
            .iter()
            .any(|l| l.kind == "ok" && l.complete && l.reason.is_none())
    );
    // What the partial listing read is kept as observed.
    let observed = store.observed().expect("observed");
    let read = observed
        .iter()
        .filter(|o| o.target.kind == "list-fails-later")
        .count();
    assert_eq!(read, 4, "pages 1 and 2 were read");
}

#[tokio::test]
async fn a_plugin_error_of_48_mib_becomes_one_short_record_with_its_length_and_digest() {
    let origin = ReflectingOrigin::start().await.expect("origin starts");
    let (_dir, trail, sink) = trail();
    let roomy = SandboxLimitsOverride {
        memory_mib: Some(160),
        cpu_ms: Some(5_000),
        wall_ms: Some(30_000),
        ..SandboxLimitsOverride::default()
    };
    let host = host_with_sink(
        Config::default(),
        vec![("evil", evil(&origin.base_url(), &[], roomy))],
        sink,
    );
    let call = host.grant("evil", &action("big-error")).await;
    let message = call.result.expect_err("the plugin fails").to_string();
    assert!(message.len() < 5 * 1024, "{} bytes", message.len());
    assert!(
        message.contains("50331648 bytes in all"),
        "{}",
        &message[4000..]
    );
    assert!(message.contains("sha256 "), "{}", &message[4000..]);
    let written = std::fs::metadata(&trail).expect("trail").len();
    assert!(
        written < 64 * 1024,
        "the audit trail grew by {written} bytes"
    );
}

#[tokio::test]
async fn check_reports_are_bounded() {
    let origin = ReflectingOrigin::start().await.expect("origin starts");
    let (host, _audit) = host_with(
        Config::default(),
        vec![(
            "evil",
            evil(&origin.base_url(), &[("check", "terminal")], small_limits()),
        )],
    );
    let report = host.check("evil").await.result.expect("check answers");
    assert!(report.warnings.iter().all(|w| w.len() < 5 * 1024));
    assert!(report.warnings[1].contains("1048576 bytes in all"));
}

#[tokio::test]
async fn descriptions_that_break_the_contract_refuse_the_plugin_naming_the_rule() {
    let origin = ReflectingOrigin::start().await.expect("origin starts");
    let cases = [
        ("duplicate-kinds", "`ok` is declared twice"),
        ("empty-kind", "a kind name is empty"),
        ("empty-level", "a level of kind `ok` is empty"),
        ("duplicate-levels", "declares `read` twice"),
        ("escape-kind", "`ok\\u{1b}]0;pwned\\u{7}`"),
        ("many-kinds", "200000 entitlement kinds"),
        (
            "capability-for-unknown-kind",
            "capabilities name kind `nonexistent`, which it does not declare",
        ),
        ("duplicate-capabilities", "`ok` is listed twice"),
    ];
    for (attack, rule) in cases {
        let roomy = SandboxLimitsOverride {
            memory_mib: Some(128),
            cpu_ms: Some(5_000),
            ..small_limits()
        };
        let (host, audit) = host_with(
            Config::default(),
            vec![(
                "evil",
                evil(&origin.base_url(), &[("describe", attack)], roomy),
            )],
        );
        let refused = host.check("evil").await.result.expect_err(attack);
        let message = refused.to_string();
        assert!(
            matches!(refused, CallError::Refused(_)),
            "{attack}: {message}"
        );
        assert!(message.contains(rule), "{attack}: {message}");
        assert!(
            message.contains("breaks the contract"),
            "{attack}: {message}"
        );
        assert!(!message.contains('\x1b'), "{attack}: {message}");
        // Refused before anything else ran, and the refusal is audited.
        let grant = host.grant("evil", &action("ok")).await;
        assert!(grant.result.is_err(), "{attack}");
        assert!(
            audit
                .records()
                .iter()
                .any(|r| matches!(&r.event, AuditEvent::PluginRefused { reason, .. } if reason.contains(rule))),
            "{attack}"
        );
        assert!(
            audit.records().iter().all(|r| !matches!(
                &r.event,
                AuditEvent::CallStarted { operation, .. } if operation != "describe"
            )),
            "{attack}: only describe ran"
        );
    }
}

#[tokio::test]
async fn a_reflected_token_is_scrubbed_from_the_response_before_the_plugin_sees_it() {
    let origin = ReflectingOrigin::start().await.expect("origin starts");
    let (_dir, trail, sink) = trail();
    let host = host_with_sink(
        Config::default(),
        vec![(
            "evil",
            evil(&origin.base_url(), &[("check", "reflect")], small_limits()),
        )],
        sink,
    );
    let report = host.check("evil").await.result.expect("check answers");
    assert!(!report.principal.contains(CANARY), "{}", report.principal);
    assert!(
        report.principal.contains("[redacted:token]"),
        "{}",
        report.principal
    );
    let received = origin.received();
    assert_eq!(received.len(), 2, "{received:?}");
    for request in &received {
        assert!(!request.target.contains(CANARY), "{}", request.target);
        assert!(!String::from_utf8_lossy(&request.body).contains(CANARY));
        for (name, value) in &request.headers {
            if name == "authorization" {
                continue;
            }
            assert!(!value.contains(CANARY), "{name}: {value}");
        }
    }
    // The host injected it where it belongs.
    assert!(
        received[0]
            .headers
            .iter()
            .any(|(n, v)| n == "authorization" && v == &format!("Bearer {CANARY}"))
    );
    let trail = std::fs::read_to_string(&trail).expect("trail");
    assert!(!trail.contains(CANARY));
}

#[tokio::test]
async fn a_revealed_secret_never_comes_back_out_through_the_host() {
    let origin = ReflectingOrigin::start().await.expect("origin starts");
    let (_dir, trail, sink) = trail();
    let host = host_with_sink(
        Config::default(),
        vec![("evil", evil(&origin.base_url(), &[], small_limits()))],
        sink,
    );
    let call = host.grant("evil", &action("reveal-and-leak")).await;
    let message = call.result.expect_err("the plugin fails").to_string();
    assert!(!message.contains(REVEALED), "{message}");
    assert!(message.contains("[redacted:api-key]"), "{message}");
    for http in &call.report.http {
        assert!(!http.url.contains(REVEALED), "{}", http.url);
        let refused = http.refused.as_deref().unwrap_or_default();
        assert!(!refused.contains(REVEALED), "{refused}");
    }
    let trail = std::fs::read_to_string(&trail).expect("trail");
    assert!(!trail.contains(REVEALED));
    assert!(trail.contains("[redacted:api-key]"));
}

#[tokio::test]
async fn one_app_with_a_missing_secret_fails_alone_naming_it() {
    let origin = ReflectingOrigin::start().await.expect("origin starts");
    let mut broken = evil(&origin.base_url(), &[], small_limits());
    broken.reveal.clear();
    broken.secrets.insert(
        "token".into(),
        SecretSource::Env("PORTCULLIS_HOSTILE_TEST_SURELY_UNSET".into()),
    );
    let (host, audit) = host_with(
        Config::default(),
        vec![
            ("broken", broken),
            ("evil", evil(&origin.base_url(), &[], small_limits())),
        ],
    );
    let refused = host.check("broken").await;
    let message = refused.result.expect_err("refused").to_string();
    assert!(
        message.contains("apps.broken.secrets.token")
            && message.contains("PORTCULLIS_HOSTILE_TEST_SURELY_UNSET"),
        "{message}"
    );
    assert!(
        audit.call(&refused.report.call_id).iter().any(
            |e| matches!(e, AuditEvent::CallFinished { ok: false, result, .. } if result.contains("apps.broken.secrets.token"))
        ),
        "the refusal is audited"
    );
    assert_eq!(
        host.grant("evil", &action("ok")).await.result,
        Ok(GrantOutcome::Granted),
        "the other app keeps working"
    );
    // `describe` needs no secret: the broken app can still be inspected.
    assert!(host.describe("broken").await.result.is_ok());
}

/// Contract 0.2.0's exports against a hostile plugin: a usage page over the cap is
/// refused, a usage cursor that repeats stops the collection with what was read, and a
/// set-level that claims a change the read-back does not show is never counted.
#[tokio::test]
async fn hostile_usage_and_set_level_are_bounded_and_read_back() {
    use portcullis::engine::{self, ActionOutcome, ActionSpec, EngineOptions, NoProgress, Op};
    use portcullis::model::{Target, UsageQuery};
    use portcullis::state::{ManagedGrant, ManagedStatus};

    let (host, _audit, _origin) = evil_host(small_limits()).await;
    let huge = host
        .usage(
            "evil",
            &UsageQuery {
                kind: "usage-huge-page".into(),
                resource: Some("r".into()),
                cursor: None,
            },
        )
        .await;
    let refused = huge.result.expect_err("over the cap").to_string();
    assert!(refused.contains("10001 usage records"), "{refused}");

    let store = SqliteStore::open_in_memory().expect("store");
    for kind in ["usage-same-cursor", "usage-huge-page"] {
        store
            .record_managed(&ManagedGrant {
                person: "E1".into(),
                target: Target::new("evil", kind, "r"),
                subject: "u1".into(),
                level: None,
                rules: Vec::new(),
                status: ManagedStatus::Active,
                granted_at: Utc::now(),
                expires_at: None,
                policy_hash: "p".into(),
                run_id: "r".into(),
            })
            .expect("managed");
    }
    let started = Instant::now();
    let collected = portcullis::ops::collect_usage(&host, &store)
        .await
        .expect("collects");
    assert!(started.elapsed() < Duration::from_secs(10));
    let looped = collected
        .iter()
        .find(|c| c.kind == "usage-same-cursor")
        .expect("collected");
    assert_eq!(
        looped.records, 2,
        "both pages before the repeat: {collected:?}"
    );
    assert!(
        looped
            .problem
            .as_deref()
            .is_some_and(|p| p.contains("a second time")),
        "{collected:?}"
    );
    let huge = collected
        .iter()
        .find(|c| c.kind == "usage-huge-page")
        .expect("collected");
    assert_eq!(huge.records, 0);
    assert!(huge.problem.is_some(), "{collected:?}");
    assert_eq!(
        store.usage().expect("usage").len(),
        1,
        "one subject, kept once"
    );

    let spec = ActionSpec {
        op: Op::SetLevel,
        app: "evil".into(),
        subject: Subject {
            id: "mallory".into(),
            email: None,
        },
        entitlement: Entitlement {
            kind: "set-level-lies".into(),
            resource: "r".into(),
            level: Some("low".into()),
        },
        reason: "test".into(),
        trigger: Default::default(),
    };
    let options = EngineOptions {
        max_attempts: 2,
        ..EngineOptions::default()
    };
    let report = engine::run(
        Arc::new(host),
        "lies",
        vec![spec],
        &options,
        Arc::new(NoProgress),
    )
    .await
    .expect("runs");
    assert!(
        matches!(&report.actions[0].outcome, ActionOutcome::Alerted { reason } if reason.contains("read-back")),
        "{:?}",
        report.actions[0].outcome
    );
}
