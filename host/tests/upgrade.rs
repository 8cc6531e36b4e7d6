//! Upgrade review through the binary: a plugin file that changes is compared with the
//! version accepted in state. Keeping or narrowing what it may do is taken and audited; a
//! new signer or a new kind is held (the command refuses, naming what it adds) until
//! `portcullis plugin accept APP`, recorded in state and audit with both sha256s.

use std::path::Path;
use std::process::Output;

use portcullis_simulators::{GITHUB_DEMO_TOKEN, github_demo};
use serde_json::Value;

mod common;
use common::{portcullis, text, unsigned};

/// `bytes` with a custom section naming `tag`: another build of the same component.
fn rebuilt(bytes: &[u8], tag: &str) -> Vec<u8> {
    let mut payload = vec![5];
    payload.extend_from_slice(b"build");
    payload.extend_from_slice(tag.as_bytes());
    let mut out = bytes.to_vec();
    out.push(0);
    out.push(payload.len() as u8);
    out.extend_from_slice(&payload);
    out
}

fn audit(dir: &Path, event: &str) -> Vec<Value> {
    std::fs::read_to_string(dir.join("audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("audit line"))
        .filter(|r| r["event"] == event)
        .collect()
}

fn sha(bytes: &[u8]) -> String {
    portcullis::plugin::sha256_hex(bytes)
}

async fn check(dir: &Path) -> Output {
    portcullis(dir, &["check", "--app", "wiki"]).await
}

#[tokio::test]
async fn a_widening_upgrade_waits_for_acceptance_and_a_narrowing_one_is_taken() {
    let sim = github_demo().await.expect("simulator");
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path();
    std::fs::write(d.join("token"), GITHUB_DEMO_TOKEN).expect("token");
    std::fs::write(
        d.join("portcullis.toml"),
        format!(
            "[audit]\npath = \"audit.jsonl\"\n\n[apps.wiki]\nplugin = \"wiki.wasm\"\nbase_url = \"{}\"\nsecrets = {{ token = \"file:token\" }}\nnetwork = {{ allow_loopback = true }}\n",
            sim.base_url()
        ),
    )
    .expect("config");
    let first = rebuilt(&unsigned("github"), "1");
    std::fs::write(d.join("wiki.wasm"), &first).expect("plugin");
    // Without state nothing was accepted yet: the first command that has state accepts
    // the version it finds (first use).
    let output = portcullis(d, &["approvals"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let output = check(d).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let accepted = audit(d, "plugin-accepted");
    assert_eq!(accepted.len(), 1, "{accepted:?}");
    assert_eq!(accepted[0]["by"], "first-use");
    assert_eq!(accepted[0]["to_sha256"], sha(&first));

    // Another build with the same imports, kinds, levels and signer: taken, audited.
    let second = rebuilt(&unsigned("github"), "2");
    std::fs::write(d.join("wiki.wasm"), &second).expect("plugin");
    let output = check(d).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let accepted = audit(d, "plugin-accepted");
    assert_eq!(accepted.len(), 2, "{accepted:?}");
    assert_eq!(accepted[1]["by"], "narrows-or-keeps");
    assert_eq!(accepted[1]["from_sha256"], sha(&first));
    assert_eq!(accepted[1]["to_sha256"], sha(&second));

    // A new signer widens: refused until accepted, audited once however often it is tried.
    let vendor = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let signed = portcullis::signing::sign(&second, &vendor).expect("sign");
    std::fs::write(d.join("wiki.wasm"), &signed).expect("plugin");
    for _ in 0..2 {
        let output = check(d).await;
        let shown = text(&output);
        assert_eq!(output.status.code(), Some(2), "{shown}");
        assert!(shown.contains("app `wiki`: its plugin changed"), "{shown}");
        assert!(shown.contains("new signer ed25519:"), "{shown}");
        assert!(shown.contains("portcullis plugin accept wiki"), "{shown}");
    }
    let held = audit(d, "plugin-upgrade-held");
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0]["from_sha256"], sha(&second));
    assert_eq!(held[0]["to_sha256"], sha(&signed));

    // Inspecting it is allowed (that is how it is reviewed); accepting records both.
    let output = portcullis(d, &["plugin", "inspect", "wiki"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let output = portcullis(d, &["--json", "plugin", "accept", "wiki", "--by", "carol"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let doc: Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(doc["accepted"]["from_sha256"], sha(&second), "{doc}");
    assert_eq!(doc["accepted"]["to_sha256"], sha(&signed), "{doc}");
    let output = check(d).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let by_carol: Vec<Value> = audit(d, "plugin-accepted")
        .into_iter()
        .filter(|r| r["by"] == "carol")
        .collect();
    assert_eq!(by_carol.len(), 1);
    assert_eq!(
        by_carol[0]["widened"][0]
            .as_str()
            .map(|w| w.starts_with("new signer")),
        Some(true)
    );
    let output = portcullis(d, &["plugin", "accept", "wiki"]).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output).contains("already the accepted version"));

    // Another connector in its place: new kinds (and the old ones gone) are named.
    std::fs::write(d.join("wiki.wasm"), unsigned("slack")).expect("plugin");
    let output = check(d).await;
    let shown = text(&output);
    assert_eq!(output.status.code(), Some(2), "{shown}");
    assert!(shown.contains("new kind channel"), "{shown}");
    assert!(shown.contains("no longer signed"), "{shown}");
}
