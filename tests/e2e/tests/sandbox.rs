//! The sandbox against an adversarial plugin (tests/fixtures/hostile): every attack fails
//! with a clear, audited reason, and the host keeps serving the next call.

use portcullis::audit::AuditEvent;
use portcullis::config::{Config, SandboxLimitsOverride};
use portcullis::model::{Action, ConnectorError, Entitlement, GrantOutcome, Subject};
use portcullis::{CallError, Host, LimitExceeded};
use portcullis_e2e::{app, fixtures, host, host_with};
use portcullis_simulators::{GITHUB_DEMO_TOKEN, github_demo};

fn hostile(kind: &str) -> Action {
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
        reason: "sandbox test".into(),
    }
}

/// The hostile plugin as app `evil`, pointed at the GitHub simulator, with the token
/// injectable but not revealable, and small limits so attacks end quickly.
async fn evil_host() -> (
    Host,
    portcullis::audit::MemorySink,
    portcullis_simulators::GithubSimulator,
) {
    let sim = github_demo().await.expect("simulator starts");
    let mut evil = app(
        fixtures::HOSTILE,
        &sim.base_url(),
        &[("token", GITHUB_DEMO_TOKEN), ("api-key", "k3y-allowed")],
    );
    evil.reveal = vec!["api-key".into()];
    evil.limits = Some(SandboxLimitsOverride {
        cpu_ms: Some(200),
        memory_mib: Some(32),
        wall_ms: Some(5_000),
        log_lines: Some(50),
        ..SandboxLimitsOverride::default()
    });
    let (host, audit) = host_with(Config::default(), vec![("evil", evil)]);
    (host, audit, sim)
}

async fn ok_call_still_works(host: &Host) {
    let call = host.grant("evil", &hostile("ok")).await;
    assert_eq!(
        call.result,
        Ok(GrantOutcome::Granted),
        "the next call must succeed"
    );
}

#[tokio::test]
async fn infinite_loop_is_stopped_by_the_cpu_deadline_and_the_next_call_succeeds() {
    let (host, audit, _sim) = evil_host().await;
    let call = host.grant("evil", &hostile("spin")).await;
    assert_eq!(
        call.result,
        Err(CallError::Limit(LimitExceeded::Cpu { limit_ms: 200 }))
    );
    let message = call.result.expect_err("stopped").to_string();
    assert!(
        message.contains("CPU") && message.contains("limits.cpu_ms"),
        "{message}"
    );
    assert!(
        audit
            .call(&call.report.call_id)
            .iter()
            .any(|e| matches!(e, AuditEvent::LimitExceeded { limit, .. } if limit == "cpu")),
        "the stop is audited"
    );
    ok_call_still_works(&host).await;
}

#[tokio::test]
async fn memory_bomb_fails_cleanly_with_the_limit_named() {
    let (host, _audit, _sim) = evil_host().await;
    let call = host.grant("evil", &hostile("memory")).await;
    match &call.result {
        Err(CallError::Limit(LimitExceeded::Memory {
            limit_mib,
            requested_mib,
        })) => {
            assert_eq!(*limit_mib, 32);
            assert!(*requested_mib > 32);
        }
        other => panic!("expected the memory limit, got {other:?}"),
    }
    ok_call_still_works(&host).await;
}

#[tokio::test]
async fn unbounded_recursion_is_a_clean_trap() {
    let (host, _audit, _sim) = evil_host().await;
    let call = host.grant("evil", &hostile("recursion")).await;
    assert!(
        matches!(
            &call.result,
            Err(CallError::Trap(_)) | Err(CallError::Limit(_))
        ),
        "{:?}",
        call.result
    );
    ok_call_still_works(&host).await;
}

#[tokio::test]
async fn request_outside_the_allowlist_is_refused_with_a_readable_reason() {
    let (host, audit, sim) = evil_host().await;
    let call = host.grant("evil", &hostile("forbidden-host")).await;
    let message = call.result.expect_err("refused").to_string();
    assert!(message.contains("forbidden.example.com"), "{message}");
    assert!(
        message.contains(&sim.base_url()),
        "names the allowed origin: {message}"
    );
    let http = &call.report.http;
    assert_eq!(http.len(), 1);
    assert!(
        http[0].status.is_none() && http[0].refused.is_some(),
        "{http:?}"
    );
    assert!(
        audit.call(&call.report.call_id).iter().any(|e| matches!(
            e,
            AuditEvent::Http { refused: Some(reason), .. } if reason.contains("outside the origin")
        )),
        "the refusal is audited"
    );
}

#[tokio::test]
async fn metadata_address_is_refused() {
    let (host, _audit, _sim) = evil_host().await;
    let message = host
        .grant("evil", &hostile("private-ip"))
        .await
        .result
        .expect_err("refused")
        .to_string();
    // The origin check refuses it first; either way, no request leaves the host.
    assert!(message.contains("169.254.169.254"), "{message}");
}

#[tokio::test]
async fn loopback_is_refused_unless_the_operator_allows_it() {
    let sim = github_demo().await.expect("simulator starts");
    let mut strict = app(
        fixtures::HOSTILE,
        &sim.base_url(),
        &[("token", GITHUB_DEMO_TOKEN)],
    );
    strict.network.allow_loopback = false;
    let (host, _audit) = host(vec![("evil", strict)]);
    let message = host
        .grant("evil", &hostile("http-to-base"))
        .await
        .result
        .expect_err("loopback refused")
        .to_string();
    assert!(message.contains("loopback"), "{message}");
    assert!(
        message.contains("allow_loopback"),
        "says how to allow it: {message}"
    );
    assert!(sim.requests().is_empty(), "nothing reached the simulator");
}

#[tokio::test]
async fn allowed_request_gets_the_token_injected_by_the_host() {
    let (host, _audit, sim) = evil_host().await;
    let call = host.grant("evil", &hostile("http-to-base")).await;
    assert_eq!(call.result, Ok(GrantOutcome::Granted));
    assert!(sim.requests().iter().any(|r| r.had_authorization));
}

#[tokio::test]
async fn a_plugin_cannot_set_the_authorization_header_itself() {
    let (host, _audit, sim) = evil_host().await;
    let message = host
        .grant("evil", &hostile("send-auth-header"))
        .await
        .result
        .expect_err("refused")
        .to_string();
    assert!(
        message.to_lowercase().contains("authorization"),
        "{message}"
    );
    assert!(sim.requests().is_empty());
}

#[tokio::test]
async fn a_plugin_cannot_read_a_secret_it_was_not_granted() {
    let (host, audit, _sim) = evil_host().await;
    let call = host.grant("evil", &hostile("steal-secret")).await;
    match &call.result {
        Err(CallError::Connector(ConnectorError::Unauthorized(message))) => {
            assert!(message.contains("reveal refused"), "{message}");
            assert!(message.contains("token"), "{message}");
            assert!(!message.contains(GITHUB_DEMO_TOKEN));
        }
        other => panic!("the reveal must be refused, got {other:?}"),
    }
    assert!(
        audit.call(&call.report.call_id).iter().any(|e| matches!(
            e,
            AuditEvent::SecretRefused { name, .. } if name == "token"
        )),
        "the refusal is audited"
    );

    // A secret the config does grant is revealed, and the reveal is audited; handed back
    // to the host (here as a pending detail) it is redacted like any loaded secret.
    let call = host.grant("evil", &hostile("reveal-allowed")).await;
    assert_eq!(
        call.result,
        Ok(GrantOutcome::Pending {
            detail: "[redacted:api-key]".into()
        })
    );
    assert!(audit.call(&call.report.call_id).iter().any(|e| matches!(
        e,
        AuditEvent::SecretRevealed { name } if name == "api-key"
    )));
}

#[tokio::test]
async fn log_flood_is_capped_and_the_call_still_ends() {
    let (host, _audit, _sim) = evil_host().await;
    let call = host.grant("evil", &hostile("log-flood")).await;
    // 100,000 log calls: past limits.host_calls the plugin is stopped; before that, lines
    // beyond limits.log_lines are dropped and counted.
    assert!(call.report.log_lines_dropped > 0, "{:?}", call.report);
    assert!(
        matches!(
            call.result,
            Err(CallError::Limit(LimitExceeded::HostCalls { .. })) | Ok(_)
        ),
        "{:?}",
        call.result
    );
    ok_call_still_works(&host).await;
}

#[tokio::test]
async fn huge_output_fails_cleanly() {
    let (host, _audit, _sim) = evil_host().await;
    let call = host.grant("evil", &hostile("huge-output")).await;
    assert!(
        call.result.is_err(),
        "a 64 MiB error cannot fit a 32 MiB sandbox"
    );
    ok_call_still_works(&host).await;
}
