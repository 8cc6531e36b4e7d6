//! The plugin supply chain as a vendor and an operator use it, through the binary: keys,
//! signatures inside the component or beside it, `[plugins.trust]` with
//! `require_signed`, and every way a file is refused at load (unsigned, unknown key, one
//! changed byte, a signature over another file, a revoked or expired key), each named and
//! audited, nothing half-written.

use std::path::Path;
use std::process::Output;

use serde_json::Value;

mod common;
use common::{portcullis, text, unsigned};

fn public_key(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(format!("{name}.key.pub")))
        .expect("public key")
        .trim()
        .to_owned()
}

/// A config whose app `wiki` runs `wiki.wasm`, signatures required, `trust` appended.
fn write_config(dir: &Path, trust: &str) {
    std::fs::write(
        dir.join("portcullis.toml"),
        format!(
            r#"
[audit]
path = "audit.jsonl"

[plugins]
require_signed = true

{trust}

[apps.wiki]
plugin = "wiki.wasm"
base_url = "https://wiki.acme.example"
secrets = {{ token = "env:WIKI_TOKEN" }}

[apps.github-acme]
plugin = "github"
base_url = "https://api.github.com"
"#
        ),
    )
    .expect("config");
}

fn publisher(key: &str, extra: &str) -> String {
    format!(
        "[[plugins.trust.publisher]]\nname = \"Acme Wiki Inc.\"\nkey = \"{key}\"\napps = [\"wiki\"]\n{extra}\n"
    )
}

/// Loads every app (`check` builds the host before it calls anything); the refusal, if
/// any, is the exit 2 text.
async fn load(dir: &Path) -> Output {
    portcullis(dir, &["check", "--app", "wiki"]).await
}

fn refused(output: &Output, wanted: &[&str]) {
    let text = text(output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    for part in wanted {
        assert!(text.contains(part), "no `{part}` in: {text}");
    }
}

fn audited_refusals(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("audit line"))
        .filter(|r| r["event"] == "plugin-refused")
        .collect()
}

#[tokio::test]
async fn a_bundled_plugin_is_inspected_by_name_and_signed_by_the_project_key() {
    let dir = tempfile::tempdir().expect("dir");
    let output = portcullis(dir.path(), &["plugin", "inspect", "github"]).await;
    let shown = text(&output);
    assert_eq!(output.status.code(), Some(0), "{shown}");
    for wanted in [
        "plugin    bundled:github",
        "contract  portcullis:connector@0.2.0",
        "Portcullis project (bundled plugins)",
        "declares  github",
        "repository",
        "levels read, triage, write, maintain, admin; supports list-grants, set-level",
        "portcullis:connector/http@0.2.0",
        "limits    memory 64 MiB",
    ] {
        assert!(shown.contains(wanted), "no `{wanted}` in\n{shown}");
    }
    let output = portcullis(dir.path(), &["plugin", "verify", "github"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));

    // By a configured app's name: what its config grants, and its trust verdict.
    write_config(dir.path(), "");
    std::fs::write(dir.path().join("wiki.wasm"), unsigned("github")).expect("write");
    let output = portcullis(dir.path(), &["--json", "plugin", "inspect", "github-acme"]).await;
    let doc: Value = serde_json::from_slice(&output.stdout).expect("json");
    let plugin = &doc["plugin"];
    assert_eq!(
        plugin["grants"]["origin"], "https://api.github.com",
        "{doc}"
    );
    assert_eq!(plugin["verdict"]["signer"]["status"], "trusted", "{doc}");
    assert_eq!(plugin["plugin"]["contract"], "portcullis:connector@0.2.0");
    assert!(
        plugin["connector"]["kinds"][0]["levels"].is_array(),
        "{doc}"
    );
    let output = portcullis(dir.path(), &["plugin", "inspect", "wiki"]).await;
    let shown = text(&output);
    assert_eq!(output.status.code(), Some(0), "{shown}");
    assert!(shown.contains("signer    unsigned"), "{shown}");
    assert!(
        shown.contains("app `wiki` REFUSES it: it is not signed"),
        "{shown}"
    );
    assert!(
        shown.contains("declares  not run: it is refused"),
        "a refused plugin is never run: {shown}"
    );
    assert!(shown.contains("secrets (injected)   token"), "{shown}");
}

#[tokio::test]
async fn a_vendor_signs_and_the_operator_refuses_everything_else_by_name() {
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path();
    let wiki = d.join("wiki.wasm");
    std::fs::write(&wiki, unsigned("github")).expect("write");

    // The vendor's key.
    let output = portcullis(d, &["plugin", "keygen", "--out", "vendor.key"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(d.join("vendor.key"))
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let output = portcullis(d, &["plugin", "keygen", "--out", "vendor.key"]).await;
    assert_eq!(
        output.status.code(),
        Some(2),
        "never overwritten: {}",
        text(&output)
    );
    let vendor = public_key(d, "vendor");
    assert!(
        vendor.starts_with("ed25519:") && vendor.len() == 72,
        "{vendor}"
    );
    write_config(d, &publisher(&vendor, ""));

    // Unsigned: refused at load, naming the file and why; audited.
    refused(
        &load(d).await,
        &["wiki.wasm is refused: it is not signed", "require_signed"],
    );
    let output = portcullis(d, &["plugin", "verify", "wiki.wasm"]).await;
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(text(&output).contains("NOT VERIFIED: it is not signed"));

    // Signed by the vendor: loads (the app's missing secret is the next problem).
    let output = portcullis(d, &["plugin", "sign", "wiki.wasm", "--key", "vendor.key"]).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let output = portcullis(d, &["plugin", "verify", "wiki.wasm", "--app", "wiki"]).await;
    let shown = text(&output);
    assert_eq!(output.status.code(), Some(0), "{shown}");
    assert!(
        shown.contains("app `wiki` loads it; signer Acme Wiki Inc."),
        "{shown}"
    );
    let output = load(d).await;
    assert!(
        !text(&output).contains("is refused"),
        "a signed plugin loads: {}",
        text(&output)
    );
    let signed = std::fs::read(&wiki).expect("signed");

    // One changed byte, in the middle of the code.
    let mut changed = signed.clone();
    let middle = changed.len() / 2;
    changed[middle] ^= 0x20;
    std::fs::write(&wiki, &changed).expect("write");
    refused(
        &load(d).await,
        &[
            "wiki.wasm is refused",
            &vendor,
            "changed since it was signed",
        ],
    );
    let output = portcullis(d, &["plugin", "verify", "wiki.wasm"]).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output).contains("INVALID: the file changed since it was signed"));

    // Signed by a key nobody listed.
    std::fs::write(&wiki, unsigned("github")).expect("write");
    let output = portcullis(d, &["plugin", "keygen", "--out", "stranger.key"]).await;
    assert_eq!(output.status.code(), Some(0));
    let stranger = public_key(d, "stranger");
    let output = portcullis(d, &["plugin", "sign", "wiki.wasm", "--key", "stranger.key"]).await;
    assert_eq!(output.status.code(), Some(0));
    refused(
        &load(d).await,
        &["wiki.wasm is refused", &stranger, "does not list"],
    );

    // A key trusted for another app does not count here.
    std::fs::write(&wiki, &signed).expect("write");
    let other_app = format!(
        "[[plugins.trust.publisher]]\nname = \"GitHub vendor\"\nkey = \"{vendor}\"\napps = [\"github-acme\"]\n"
    );
    write_config(d, &other_app);
    refused(&load(d).await, &["trusted only for github-acme"]);

    // Revoked, even though listed.
    write_config(
        d,
        &format!(
            "{}\n[plugins.trust]\nrevoked = [\"{vendor}\"]\n",
            publisher(&vendor, "")
        ),
    );
    refused(
        &load(d).await,
        &["wiki.wasm is refused", &vendor, "revoked"],
    );

    // Expired.
    write_config(d, &publisher(&vendor, "expires = \"2026-01-01\""));
    refused(&load(d).await, &["expired on 2026-01-01"]);

    // Every refusal was audited with the file's sha256.
    let refusals = audited_refusals(d);
    assert!(refusals.len() >= 6, "{refusals:?}");
    assert!(
        refusals
            .iter()
            .all(|r| r["app"] == "wiki" && r["plugin_sha256"].is_string())
    );

    // A detached signature beside the file, and the same signature over another file.
    write_config(d, &publisher(&vendor, ""));
    std::fs::write(&wiki, unsigned("github")).expect("write");
    let output = portcullis(
        d,
        &[
            "plugin",
            "sign",
            "wiki.wasm",
            "--key",
            "vendor.key",
            "--detached",
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_eq!(
        std::fs::read(&wiki).expect("read"),
        unsigned("github"),
        "the file is untouched"
    );
    let output = portcullis(d, &["plugin", "verify", "wiki.wasm", "--key", &vendor]).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(text(&output).contains("(detached) valid; Acme Wiki Inc. (for wiki)"));
    let mut other = unsigned("github");
    other.extend_from_slice(&[0, 3, 2, b'x', b'y']);
    std::fs::write(&wiki, &other).expect("write");
    refused(&load(d).await, &["changed since it was signed"]);
}

#[tokio::test]
async fn bad_files_are_refused_by_sign_and_inspect_and_nothing_is_half_written() {
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path();
    let output = portcullis(d, &["plugin", "keygen", "--out", "k.key"]).await;
    assert_eq!(output.status.code(), Some(0));

    let core = b"\0asm\x01\0\0\0".to_vec();
    std::fs::write(d.join("core.wasm"), &core).expect("write");
    let output = portcullis(d, &["plugin", "sign", "core.wasm", "--key", "k.key"]).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output).contains("core WebAssembly module, not a component"),
        "{}",
        text(&output)
    );
    assert_eq!(std::fs::read(d.join("core.wasm")).expect("read"), core);

    let bytes = unsigned("github");
    let truncated = &bytes[..bytes.len() / 3];
    std::fs::write(d.join("cut.wasm"), truncated).expect("write");
    let output = portcullis(d, &["plugin", "sign", "cut.wasm", "--key", "k.key"]).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output).contains("truncated"), "{}", text(&output));
    assert_eq!(std::fs::read(d.join("cut.wasm")).expect("read"), truncated);
    let output = portcullis(d, &["plugin", "inspect", "cut.wasm"]).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output).contains("cut.wasm") && text(&output).contains("truncated"));

    std::fs::write(d.join("broken.key"), "not a key").expect("write");
    std::fs::write(d.join("ok.wasm"), &bytes).expect("write");
    let output = portcullis(d, &["plugin", "sign", "ok.wasm", "--key", "broken.key"]).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output).contains("broken.key"), "{}", text(&output));
    assert_eq!(std::fs::read(d.join("ok.wasm")).expect("read"), bytes);
    let leftovers: Vec<_> = std::fs::read_dir(d)
        .expect("dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let output = portcullis(d, &["plugin", "inspect", "no-such-thing"]).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output).contains("not a file, a configured app"),
        "{}",
        text(&output)
    );

    // A trust config that cannot be used is a config error, naming the field.
    std::fs::write(
        d.join("portcullis.toml"),
        "[[plugins.trust.publisher]]\nname = \"x\"\nkey = \"ed25519:abcd\"\n",
    )
    .expect("write");
    let output = portcullis(d, &["plugin", "verify", "ok.wasm"]).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output).contains("plugins.trust.publisher[0].key"),
        "{}",
        text(&output)
    );
}
