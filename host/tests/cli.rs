//! The `portcullis` binary as an operator runs it: config file, exit codes, human and
//! JSON output, bad input.

use std::path::Path;
use std::process::Output;

use portcullis_simulators::{GITHUB_DEMO_TOKEN, GithubSimulator, github_demo};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

async fn portcullis(dir: &Path, args: &[&str]) -> Output {
    portcullis_with_env(dir, args, &[]).await
}

async fn portcullis_with_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    tokio::process::Command::new(BIN)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(dir)
        // Keep the compile cache inside the test's directory.
        .env("XDG_CACHE_HOME", dir.join("cache"))
        .env_remove("PORTCULLIS_CONFIG")
        .output()
        .await
        .expect("the binary runs")
}

fn stdout_json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn write_config(dir: &Path, base_url: &str) {
    std::fs::write(dir.join("github.token"), format!("{GITHUB_DEMO_TOKEN}\n")).expect("token file");
    std::fs::write(
        dir.join("portcullis.toml"),
        format!(
            r#"
[audit]
path = "audit.jsonl"

[apps.github-acme]
plugin = "github"
base_url = "{base_url}"
secrets = {{ token = "file:github.token" }}
network = {{ allow_loopback = true }}
"#
        ),
    )
    .expect("config");
}

#[tokio::test]
async fn demo_runs_end_to_end_and_exits_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = portcullis(dir.path(), &["demo"]).await;
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.contains("verified"), "{text}");
    assert!(text.contains("pending"), "{text}");
    // Every time is pinned, so the plans and outcomes are the same on every run.
    for line in [
        // The hire date's plan: Josh's grants from the embedded policy, without AWS.
        "Plan at 2026-12-01T09:00:00+00:00 from policy host/src/cli/demo/policy.toml",
        "# E1001 Josh Park (active; rules: engineering, platform-engineer)",
        "+ repository acme/platform-api maintain  [josh-platform]",
        "Plan: 22 to grant, 0 to change, 0 to revoke, 0 awaiting approval, 0 held, 0 unchanged.",
        "AWS (aws-dev, aws-staging) is left out",
        // Applying it: GitHub invites, the others verify.
        "-> as expected: 14 verified, 8 pending (8 GitHub invitations), 0 alerted; 22 grants now managed",
        // He accepts; the next apply re-checks.
        "Josh accepts 8 invitations",
        "-> as expected: 8 of 8 pending accepted, 8 re-checked, 8 verified; the next plan keeps 22 of 22",
        // A grant made by hand: drift finds it, the correction revokes it.
        "outside policy: 1",
        "github repository acme/data-pipelines [josh-platform = E1001] held admin wanted no",
        "correction revoked 1; josh-platform on acme/data-pipelines now: none",
        // He leaves: the guard refuses, the override revokes everything.
        "Plan: 0 to grant, 0 to change, 22 to revoke, 0 awaiting approval, 0 held, 0 unchanged.",
        "refused: blast-radius guard",
        "-> as expected: 22 of 22 revoked and verified; 0 managed grants left; Josh holds 0 grants in the apps",
        "every step ended as expected",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    assert!(!text.contains("NOT AS EXPECTED"), "{text}");

    // --json: one document, every step with its result.
    let output = portcullis(dir.path(), &["--json", "demo"]).await;
    let doc = stdout_json(&output);
    assert_eq!(output.status.code(), Some(0), "{doc}");
    assert_eq!(doc["ok"], true, "{doc}");
    let steps = doc["steps"].as_array().expect("steps");
    let names: Vec<&str> = steps.iter().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(
        names,
        [
            "check",
            "plan-hire",
            "apply-hire",
            "recheck",
            "drift",
            "plan-leave",
            "blast-radius-guard",
            "apply-leave"
        ],
        "{doc}"
    );
    assert!(steps.iter().all(|s| s["ok"] == true), "{doc}");
    assert_eq!(steps[1]["result"]["plan"]["summary"]["grant"], 22, "{doc}");
    assert_eq!(
        steps[4]["result"]["drift"]["outside_policy"][0]["target"]["resource"],
        "acme/data-pipelines",
        "{doc}"
    );
}

#[tokio::test]
async fn grant_verify_revoke_with_a_config_file_and_json_output() {
    let sim = github_demo().await.expect("simulator");
    sim.set_collaborator("acme/platform-api", "hubot", "read");
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(dir.path(), &sim.base_url());
    let action = [
        "--app",
        "github-acme",
        "--subject",
        "hubot",
        "--kind",
        "repository",
        "--resource",
        "acme/platform-api",
    ];

    let mut args = vec!["--json", "grant"];
    args.extend(action);
    args.extend(["--level", "maintain"]);
    let output = portcullis(dir.path(), &args).await;
    let doc = stdout_json(&output);
    assert_eq!(output.status.code(), Some(0), "{doc}");
    assert_eq!(doc["verdict"]["verdict"], "verified", "{doc}");
    assert_eq!(
        doc["readback"]["result"]["ok"]["level"], "maintain",
        "{doc}"
    );

    // New collaborator: an invitation, reported as pending with its own exit code.
    let output = portcullis(
        dir.path(),
        &[
            "grant",
            "--app",
            "github-acme",
            "--subject",
            "octocat",
            "--kind",
            "repository",
            "--resource",
            "acme/platform-api",
            "--level",
            "write",
        ],
    )
    .await;
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(3), "{text}");
    assert!(text.contains("pending"), "{text}");

    let mut args = vec!["revoke"];
    args.extend(action);
    let output = portcullis(dir.path(), &args).await;
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(text.contains("verified: read-back shows absent"), "{text}");

    let mut args = vec!["--json", "verify"];
    args.extend(action);
    let output = portcullis(dir.path(), &args).await;
    assert_eq!(stdout_json(&output)["result"]["ok"]["state"], "absent");

    let audit =
        std::fs::read_to_string(dir.path().join("audit.jsonl")).expect("audit file written");
    assert!(audit.lines().count() >= 6, "{audit}");
    assert!(
        !audit.contains(GITHUB_DEMO_TOKEN),
        "no secrets in the audit trail"
    );
}

#[tokio::test]
async fn failed_action_exits_one() {
    let sim = github_demo().await.expect("simulator");
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(dir.path(), &sim.base_url());
    let output = portcullis(
        dir.path(),
        &[
            "grant",
            "--app",
            "github-acme",
            "--subject",
            "ghost-user-404",
            "--kind",
            "repository",
            "--resource",
            "acme/platform-api",
            "--level",
            "write",
        ],
    )
    .await;
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

#[tokio::test]
async fn bad_config_is_bad_input_with_file_field_and_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("portcullis.toml"),
        "[apps.gh]\nplugin = \"github\"\nbase_url = \"https://api.github.com\"\nsecrets = { token = \"env:PORTCULLIS_CLI_TEST_UNSET\" }\n",
    )
    .expect("config");
    let output = portcullis(dir.path(), &["check", "--app", "gh"]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("portcullis.toml"), "{stderr}");
    assert!(stderr.contains("apps.gh.secrets.token"), "{stderr}");
    assert!(stderr.contains("PORTCULLIS_CLI_TEST_UNSET"), "{stderr}");

    std::fs::write(
        dir.path().join("portcullis.toml"),
        "[apps.gh]\nplugin = \"missing/plugin.wasm\"\nbase_url = \"https://api.github.com\"\n",
    )
    .expect("config");
    let output = portcullis(dir.path(), &["check", "--app", "gh"]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("apps.gh.plugin") && stderr.contains("does not exist"),
        "{stderr}"
    );
}

#[tokio::test]
async fn plugin_inspect_prints_contract_digest_and_grants() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wasm = dir.path().join("github.wasm");
    std::fs::write(
        &wasm,
        portcullis::bundled_plugin("github").expect("bundled"),
    )
    .expect("write");
    write_config(dir.path(), "https://api.github.com");
    let output = portcullis(
        dir.path(),
        &["plugin", "inspect", "github.wasm", "--app", "github-acme"],
    )
    .await;
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(text.contains("portcullis:connector@0.2.0"), "{text}");
    assert!(
        text.contains("portcullis:connector/connector@0.2.0"),
        "{text}"
    );
    assert!(text.contains("portcullis:connector/http@0.2.0"), "{text}");
    assert!(text.contains("https://api.github.com"), "{text}");
    assert!(text.contains("secrets (injected)   token"), "{text}");
    assert!(text.contains("secrets (readable)   none"), "{text}");

    std::fs::write(
        dir.path().join("broken.wasm"),
        &std::fs::read(&wasm).expect("read")[..100],
    )
    .expect("write");
    let output = portcullis(dir.path(), &["plugin", "inspect", "broken.wasm"]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("broken.wasm") && stderr.contains("truncated"),
        "{stderr}"
    );
}

#[tokio::test]
async fn plugin_test_runs_the_conformance_kit_and_prints_the_table() {
    let sim = github_demo().await.expect("simulator");
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(dir.path(), &sim.base_url());
    let output = portcullis(
        dir.path(),
        &[
            "plugin",
            "test",
            "--app",
            "github-acme",
            "--subject",
            "monalisa",
            "--kind",
            "repository",
            "--resource",
            "acme/platform-docs",
            "--level",
            "triage",
        ],
    )
    .await;
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(text.contains("9/9 steps passed"), "{text}");
    assert!(text.contains("PASS revoke again (idempotent)"), "{text}");
    assert!(
        text.contains("PUT http://127.0.0.1"),
        "lists the HTTP calls: {text}"
    );

    // A subject that does not exist fails the kit, with a non-zero exit.
    let output = portcullis(
        dir.path(),
        &[
            "plugin",
            "test",
            "--app",
            "github-acme",
            "--subject",
            "nobody-here",
            "--kind",
            "repository",
            "--resource",
            "acme/platform-docs",
            "--level",
            "triage",
        ],
    )
    .await;
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("FAIL grant"), "{text}");
}

#[tokio::test]
async fn plugin_new_writes_a_standalone_crate_anywhere_and_a_workspace_crate_in_the_repository() {
    // Outside the repository: a vendor's standalone crate, the SDK by version.
    let dir = tempfile::tempdir().expect("tempdir");
    let output = portcullis(dir.path(), &["plugin", "new", "acme-hr"]).await;
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let crate_dir = dir.path().join("acme-hr");
    let manifest = std::fs::read_to_string(crate_dir.join("Cargo.toml")).expect("manifest");
    assert!(manifest.contains("portcullis-sdk = \"0.1\""), "{manifest}");
    assert!(
        manifest.contains("\n[workspace]\n"),
        "a crate of its own: {manifest}"
    );
    for file in [
        "src/lib.rs",
        "tests/conformance.rs",
        "README.md",
        "rust-toolchain.toml",
        ".github/workflows/ci.yml",
        "wit/world.wit",
        "wit/connector.wit",
    ] {
        assert!(crate_dir.join(file).is_file(), "no {file}");
    }
    let lib = std::fs::read_to_string(crate_dir.join("src/lib.rs")).expect("lib.rs");
    assert!(lib.contains("export_connector!(AcmeHr)"));
    let readme = std::fs::read_to_string(crate_dir.join("README.md")).expect("readme");
    assert!(readme.contains("portcullis:connector@0.2.0"), "{readme}");
    let again = portcullis(dir.path(), &["plugin", "new", "acme-hr"]).await;
    assert_eq!(
        again.status.code(),
        Some(2),
        "refuses a non-empty directory"
    );
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));
    let output = portcullis(
        dir.path(),
        &[
            "plugin",
            "new",
            "acme-hr",
            "--dir",
            "vendor/hr",
            "--sdk-git",
            "https://git.example/sdk",
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(0));
    let manifest =
        std::fs::read_to_string(dir.path().join("vendor/hr/Cargo.toml")).expect("manifest");
    assert!(
        manifest.contains("portcullis-sdk = { git = \"https://git.example/sdk\" }"),
        "{manifest}"
    );

    // In the repository: plugins/NAME and an end-to-end test.
    let repo = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        repo.path().join("Cargo.toml"),
        "[workspace]\nmembers = [\"plugins/*\"]\n",
    )
    .expect("manifest");
    let output = portcullis(repo.path(), &["plugin", "new", "acme-hr"]).await;
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lib =
        std::fs::read_to_string(repo.path().join("plugins/acme-hr/src/lib.rs")).expect("lib.rs");
    assert!(lib.contains("export_connector!(AcmeHr)"));
    assert!(repo.path().join("plugins/acme-hr/Cargo.toml").is_file());
    assert!(repo.path().join("tests/e2e/tests/acme_hr.rs").is_file());

    let again = portcullis(repo.path(), &["plugin", "new", "acme-hr"]).await;
    assert_eq!(again.status.code(), Some(2), "refuses to overwrite");
    let bad = portcullis(repo.path(), &["plugin", "new", "Acme HR"]).await;
    assert_eq!(bad.status.code(), Some(2));
}

#[tokio::test]
async fn apply_runs_actions_reads_them_back_and_guards_large_revokes() {
    let sim = github_demo().await.expect("simulator");
    sim.set_collaborator("acme/platform-api", "hubot", "read");
    sim.set_collaborator("acme/platform-infra", "monalisa", "write");
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(dir.path(), &sim.base_url());
    std::fs::write(
        dir.path().join("actions.toml"),
        r#"
[[actions]]
op = "grant"
app = "github-acme"
subject = "hubot"
kind = "repository"
resource = "acme/platform-api"
level = "maintain"

[[actions]]
op = "revoke"
app = "github-acme"
subject = "monalisa"
kind = "repository"
resource = "acme/platform-infra"
"#,
    )
    .expect("actions");
    let output = portcullis(
        dir.path(),
        &["--json", "apply", "actions.toml", "--run-id", "r1"],
    )
    .await;
    let doc = stdout_json(&output);
    assert_eq!(output.status.code(), Some(0), "{doc}");
    let actions = doc["run"]["actions"].as_array().expect("actions");
    assert_eq!(actions.len(), 2);
    assert!(
        actions
            .iter()
            .all(|a| a["outcome"]["outcome"] == "verified"),
        "{doc}"
    );
    assert_eq!(
        sim.collaborator_role("acme/platform-api", "hubot")
            .as_deref(),
        Some("maintain")
    );
    assert_eq!(
        sim.collaborator_role("acme/platform-infra", "monalisa"),
        None
    );

    // The same revoke with a guard of zero revokes: refused before anything runs.
    let config = std::fs::read_to_string(dir.path().join("portcullis.toml")).expect("config");
    std::fs::write(
        dir.path().join("portcullis.toml"),
        format!("[engine]\nmax_revokes = 0\n{config}"),
    )
    .expect("config");
    sim.clear_requests();
    let output = portcullis(dir.path(), &["apply", "actions.toml"]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("blast-radius") && stderr.contains("--allow-large-revoke"),
        "{stderr}"
    );
    assert!(sim.requests().is_empty(), "nothing ran");

    std::fs::write(dir.path().join("bad.toml"), "[[actions]]\nop = \"grant\"\n").expect("bad");
    let output = portcullis(dir.path(), &["apply", "bad.toml"]).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("bad.toml"));
}

/// One `[[actions]]` table for `github-acme`.
fn github_action(
    op: &str,
    subject: &str,
    kind: &str,
    resource: &str,
    level: Option<&str>,
) -> String {
    let level = level.map_or(String::new(), |l| format!("level = \"{l}\"\n"));
    format!(
        "[[actions]]\nop = \"{op}\"\napp = \"github-acme\"\nsubject = \"{subject}\"\nkind = \"{kind}\"\nresource = \"{resource}\"\n{level}\n"
    )
}

#[tokio::test]
async fn apply_refuses_every_invalid_action_before_anything_runs() {
    let sim = github_demo().await.expect("simulator");
    sim.set_collaborator("acme/platform-api", "hubot", "read");
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(dir.path(), &sim.base_url());
    // Valid grants around the bad ones: none of them may run. Each table is 8 lines.
    let mut actions = String::new();
    for repo in ["platform-api", "platform-infra", "platform-docs"] {
        actions.push_str(&github_action(
            "grant",
            "hubot",
            "repository",
            &format!("acme/{repo}"),
            Some("write"),
        ));
    }
    actions.push_str(&github_action(
        "grant",
        "hubot",
        "repository",
        "acme/data",
        Some("owner"),
    )); // 4, line 25
    actions.push_str(&github_action(
        "grant",
        "hubot",
        "team",
        "acme/data",
        Some("write"),
    )); // 5, line 33
    actions.push_str(&github_action(
        "grant",
        "hubot",
        "repository",
        "acme/web",
        None,
    )); // 6, line 41
    actions.push_str(&github_action(
        "revoke",
        "hubot",
        "repository",
        "acme/platform-docs",
        None,
    )); // 7, line 48
    actions.push_str(
        "[[actions]]\nop = \"grant\"\napp = \"gitlab\"\nsubject = \"hubot\"\nkind = \"repository\"\nresource = \"acme/x\"\n", // 8, line 55
    );
    std::fs::write(dir.path().join("actions.toml"), &actions).expect("actions");
    sim.clear_requests();

    let output = portcullis(dir.path(), &["apply", "actions.toml"]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    for wanted in [
        "actions.toml: 5 invalid actions; nothing was executed:",
        "actions.toml:25: action 4: grant of repository acme/data for hubot in github-acme has unknown level `owner` (levels of `repository`, lowest first: read, triage, write, maintain, admin): fix the level",
        "actions.toml:33: action 5: app `github-acme` (github connector) has no kind `team` (its kinds: repository): fix the kind",
        "actions.toml:41: action 6: grant of repository acme/web for hubot in github-acme needs a level: one of read, triage, write, maintain, admin",
        "actions.toml:48: action 7: revoke of repository acme/platform-docs for hubot in github-acme, which action 3 grants: a run cannot do both; remove one",
        "actions.toml:55: action 8: unknown app `gitlab` (configured: github-acme): fix the name or add [apps.gitlab] to the config",
    ] {
        assert!(stderr.contains(wanted), "missing {wanted:?} in:\n{stderr}");
    }
    assert!(
        sim.requests().is_empty(),
        "no request reached the server: {:?}",
        sim.requests()
    );
    assert_eq!(
        sim.collaborator_role("acme/platform-api", "hubot")
            .as_deref(),
        Some("read"),
        "the valid grants did not run either"
    );

    // --json: the same problems as data, with action numbers and lines.
    let output = portcullis(dir.path(), &["--json", "apply", "actions.toml"]).await;
    let doc = stdout_json(&output);
    assert_eq!(output.status.code(), Some(2), "{doc}");
    let places: Vec<(u64, u64)> = doc["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .map(|p| {
            (
                p["action"].as_u64().unwrap_or(0),
                p["line"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        places,
        [(4, 25), (5, 33), (6, 41), (7, 48), (8, 55)],
        "{doc}"
    );

    // A dry run checks the same way.
    let output = portcullis(dir.path(), &["apply", "--dry-run", "actions.toml"]).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(sim.requests().is_empty(), "{:?}", sim.requests());
}

#[tokio::test]
async fn apply_dry_run_shows_what_would_run_and_runs_nothing() {
    let sim = github_demo().await.expect("simulator");
    sim.set_collaborator("acme/platform-api", "hubot", "read");
    sim.set_collaborator("acme/platform-infra", "monalisa", "write");
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(dir.path(), &sim.base_url());
    let actions = format!(
        "# two changes\n{}{}",
        github_action(
            "grant",
            "hubot",
            "repository",
            "acme/platform-api",
            Some("maintain")
        ),
        github_action(
            "revoke",
            "monalisa",
            "repository",
            "acme/platform-infra",
            None
        )
    );
    std::fs::write(dir.path().join("actions.toml"), actions).expect("actions");
    sim.clear_requests();

    let output = portcullis(dir.path(), &["apply", "--dry-run", "actions.toml"]).await;
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for wanted in [
        "dry run of actions.toml: 2 actions would run (1 grant, 1 revoke); nothing was executed",
        "1    2 grant  github-acme hubot     repository acme/platform-api at maintain",
        "2   10 revoke github-acme monalisa  repository acme/platform-infra",
    ] {
        assert!(text.contains(wanted), "missing {wanted:?} in:\n{text}");
    }

    let output = portcullis(
        dir.path(),
        &["--json", "apply", "--dry-run", "actions.toml"],
    )
    .await;
    let doc = stdout_json(&output);
    assert_eq!(output.status.code(), Some(0), "{doc}");
    assert_eq!(doc["dry_run"], true, "{doc}");
    let rows = doc["actions"].as_array().expect("actions");
    assert_eq!(rows.len(), 2, "{doc}");
    assert_eq!(
        (rows[0]["op"].as_str(), rows[0]["line"].as_u64()),
        (Some("grant"), Some(2)),
        "{doc}"
    );
    assert_eq!(rows[0]["entitlement"]["level"], "maintain", "{doc}");
    assert_eq!(
        (rows[1]["op"].as_str(), rows[1]["line"].as_u64()),
        (Some("revoke"), Some(10)),
        "{doc}"
    );
    assert_eq!(rows[1]["subject"]["id"], "monalisa", "{doc}");

    // The blast-radius guard is part of what a dry run checks.
    let config = std::fs::read_to_string(dir.path().join("portcullis.toml")).expect("config");
    std::fs::write(
        dir.path().join("portcullis.toml"),
        format!("[engine]\nmax_revokes = 0\n{config}"),
    )
    .expect("config");
    let output = portcullis(dir.path(), &["apply", "--dry-run", "actions.toml"]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("blast-radius"), "{stderr}");

    assert!(
        sim.requests().is_empty(),
        "a dry run sends nothing: {:?}",
        sim.requests()
    );
    assert_eq!(
        sim.collaborator_role("acme/platform-api", "hubot")
            .as_deref(),
        Some("read")
    );
    assert_eq!(
        sim.collaborator_role("acme/platform-infra", "monalisa")
            .as_deref(),
        Some("write")
    );

    // --dry-run is for actions files; the policy's preview is `plan`.
    let output = portcullis(dir.path(), &["apply", "--dry-run"]).await;
    assert_eq!(output.status.code(), Some(2));
}

#[tokio::test]
async fn out_of_range_settings_are_refused_before_anything_runs() {
    let sim = github_demo().await.expect("simulator");
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(dir.path(), &sim.base_url());
    let config = std::fs::read_to_string(dir.path().join("portcullis.toml")).expect("config");
    std::fs::write(
        dir.path().join("actions.toml"),
        github_action(
            "grant",
            "hubot",
            "repository",
            "acme/platform-api",
            Some("write"),
        ),
    )
    .expect("actions");
    for (setting, wanted) in [
        (
            "[limits]\nmemory_mib = 99999999\n",
            "limits.memory_mib = 99999999 is out of range: must be 1..=1024 (MiB)",
        ),
        (
            "[limits]\nmemory_mib = 0\n",
            "limits.memory_mib = 0 is out of range: must be 1..=1024 (MiB)",
        ),
        (
            "[engine]\nmax_attempts = 0\n",
            "engine.max_attempts = 0 is out of range: must be 1..=100 (attempts)",
        ),
        (
            "[engine]\nmax_revoke_share = 2.0\n",
            "engine.max_revoke_share = 2.0 is out of range: must be > 0 and <= 1 (share)",
        ),
    ] {
        std::fs::write(
            dir.path().join("portcullis.toml"),
            format!("{setting}{config}"),
        )
        .expect("config");
        sim.clear_requests();
        let output = portcullis(dir.path(), &["apply", "actions.toml"]).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(&format!("portcullis.toml: {wanted}")),
            "missing {wanted:?} in:\n{stderr}"
        );
        assert!(sim.requests().is_empty(), "{:?}", sim.requests());
    }
}

const CLI_POLICY: &str = r#"
[[rule]]
name = "platform"
when = 'person.department == "Platform"'

[[rule.grant]]
app = "github-acme"
kind = "repository"
resource = "acme/platform-api"
level = "maintain"

[[rule.grant]]
app = "github-acme"
kind = "repository"
resource = "acme/platform-infra"
level = "admin"
sensitive = true
"#;

const CLI_PEOPLE: &str = r#"{ "people": [
  { "id": "E1", "name": "Hu Bot", "attributes": { "department": "Platform" },
    "accounts": { "github-acme": "hubot" } },
  { "id": "E2", "name": "Mona", "attributes": { "department": "Sales" },
    "accounts": { "github-acme": "monalisa" } }
] }"#;

fn write_policy_config(dir: &Path, base_url: &str, policy: &str) {
    write_config(dir, base_url);
    let config = std::fs::read_to_string(dir.join("portcullis.toml")).expect("config");
    std::fs::write(
        dir.join("portcullis.toml"),
        format!(
            "[state]\npath = \"state/portcullis.db\"\n[policy]\npath = \"policy.toml\"\n[people]\ndirectory = \"people.json\"\n{config}"
        ),
    )
    .expect("config");
    std::fs::write(dir.join("policy.toml"), policy).expect("policy");
    std::fs::write(dir.join("people.json"), CLI_PEOPLE).expect("people");
}

/// A GitHub simulator where hubot already collaborates (so grants apply at once instead of
/// inviting), and a config directory with the CLI policy minus its sensitive flag: one
/// apply settles everything, no approval needed.
async fn policy_without_approvals() -> (GithubSimulator, tempfile::TempDir) {
    let sim = github_demo().await.expect("simulator");
    sim.set_collaborator("acme/platform-api", "hubot", "read");
    sim.set_collaborator("acme/platform-infra", "hubot", "read");
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = CLI_POLICY.replace("sensitive = true", "");
    write_policy_config(dir.path(), &sim.base_url(), &policy);
    (sim, dir)
}

#[tokio::test]
async fn plan_apply_approve_and_apply_again_from_a_policy() {
    let sim = github_demo().await.expect("simulator");
    // Already a collaborator: the grant applies at once instead of inviting.
    sim.set_collaborator("acme/platform-api", "hubot", "read");
    sim.set_collaborator("acme/platform-infra", "hubot", "read");
    let dir = tempfile::tempdir().expect("tempdir");
    write_policy_config(dir.path(), &sim.base_url(), CLI_POLICY);

    let output = portcullis(dir.path(), &["plan", "--at", "2027-01-04"]).await;
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        text.contains("# E1 Hu Bot (active; rules: platform)"),
        "{text}"
    );
    assert!(
        text.contains("+ repository acme/platform-api maintain  [hubot]"),
        "{text}"
    );
    assert!(
        text.contains("? repository acme/platform-infra admin  [hubot]"),
        "{text}"
    );
    assert!(
        text.contains("Plan: 1 to grant, 0 to change, 0 to revoke, 1 awaiting approval"),
        "{text}"
    );
    assert!(
        sim.requests().iter().all(|r| r.method == "GET"),
        "plan changes nothing"
    );
    assert!(
        dir.path().join("state/portcullis.db").is_file(),
        "state created on first run"
    );

    let output = portcullis(
        dir.path(),
        &["--json", "apply", "--at", "2027-01-04", "--run-id", "p1"],
    )
    .await;
    let doc = stdout_json(&output);
    assert_eq!(
        output.status.code(),
        Some(3),
        "awaiting approval is pending: {doc}"
    );
    assert_eq!(
        doc["run"]["actions"].as_array().map(Vec::len),
        Some(1),
        "{doc}"
    );
    let approval = doc["approvals_requested"][0]["id"]
        .as_i64()
        .expect("approval id");
    assert_eq!(
        sim.collaborator_role("acme/platform-api", "hubot")
            .as_deref(),
        Some("maintain")
    );
    assert_eq!(
        sim.collaborator_role("acme/platform-infra", "hubot")
            .as_deref(),
        Some("read")
    );

    let output = portcullis(dir.path(), &["approvals"]).await;
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("acme/platform-infra") && text.contains("pending"),
        "{text}"
    );

    let id = approval.to_string();
    let output = portcullis(
        dir.path(),
        &["approve", &id, "--by", "carol", "--reason", "on-call lead"],
    )
    .await;
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).expect("audit");
    assert!(
        audit.lines().any(|l| l.contains("\"approval-decided\"")
            && l.contains("carol")
            && l.contains("on-call lead")),
        "the decision is audited"
    );
    let output = portcullis(
        dir.path(),
        &["approve", &id, "--by", "dave", "--reason", "again"],
    )
    .await;
    assert_eq!(output.status.code(), Some(2), "deciding twice is refused");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("already"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let output = portcullis(dir.path(), &["apply", "--at", "2027-01-05"]).await;
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.contains("approved by carol"), "{text}");
    assert_eq!(
        sim.collaborator_role("acme/platform-infra", "hubot")
            .as_deref(),
        Some("admin")
    );
    // The grant's audit record names the approval and its approver, and the operator.
    let output = portcullis(
        dir.path(),
        &["--json", "audit", "query", "--kind", "action-started"],
    )
    .await;
    let rows = stdout_json(&output);
    let infra = rows["records"]
        .as_array()
        .and_then(|rows| {
            rows.iter()
                .find(|r| r["entitlement"]["resource"] == "acme/platform-infra")
        })
        .unwrap_or_else(|| panic!("no platform-infra grant in {rows}"));
    let trigger = &infra["trigger"];
    assert_eq!(trigger["approval"].as_i64(), Some(approval), "{infra}");
    assert_eq!(trigger["approver"], "carol", "{infra}");
    assert_eq!(trigger["source"], "cli", "{infra}");
    assert!(trigger["operator"].is_string(), "{infra}");

    // Nothing left to do.
    let output = portcullis(dir.path(), &["--json", "plan", "--at", "2027-01-06"]).await;
    let doc = stdout_json(&output);
    assert_eq!(doc["plan"]["summary"]["keep"], 2, "{doc}");
    assert_eq!(doc["plan"]["summary"]["grant"], 0, "{doc}");
    let output = portcullis(dir.path(), &["apply", "--at", "2027-01-06"]).await;
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(text.contains("nothing to run"), "{text}");
}

#[tokio::test]
async fn bad_policies_are_refused_before_anything_runs() {
    let sim = github_demo().await.expect("simulator");
    let dir = tempfile::tempdir().expect("tempdir");

    let unknown_app = CLI_POLICY.replacen("app = \"github-acme\"", "app = \"gitlab\"", 1);
    write_policy_config(dir.path(), &sim.base_url(), &unknown_app);
    let output = portcullis(dir.path(), &["apply"]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("gitlab") && stderr.contains("github-acme"),
        "{stderr}"
    );

    let unknown_level = CLI_POLICY.replace("level = \"maintain\"", "level = \"owner\"");
    write_policy_config(dir.path(), &sim.base_url(), &unknown_level);
    let output = portcullis(dir.path(), &["plan"]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("owner") && stderr.contains("maintain"),
        "{stderr}"
    );

    let syntax = CLI_POLICY.replace(
        "when = 'person.department == \"Platform\"'",
        "when = '''\nperson.department == \"Platform\" &&\n  person.team == )\n'''",
    );
    write_policy_config(dir.path(), &sim.base_url(), &syntax);
    let output = portcullis(dir.path(), &["plan"]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("policy.toml:6:"),
        "line and column in the file: {stderr}"
    );

    let missing = CLI_POLICY.replace(
        "person.department == \"Platform\"",
        "person.team == \"sre\"",
    );
    write_policy_config(dir.path(), &sim.base_url(), &missing);
    let output = portcullis(dir.path(), &["plan"]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("`team`") && stderr.contains("E1 (Hu Bot)"),
        "{stderr}"
    );

    let conflict = format!(
        "{CLI_POLICY}\n[[rule]]\nname = \"no-infra\"\nwhen = 'person.department == \"Platform\"'\n\n[[rule.deny]]\napp = \"github-acme\"\nkind = \"repository\"\nresource = \"acme/platform-api\"\n"
    );
    write_policy_config(dir.path(), &sim.base_url(), &conflict);
    let output = portcullis(dir.path(), &["plan"]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("platform") && stderr.contains("no-infra"),
        "conflict names both rules: {stderr}"
    );

    assert!(
        sim.requests().iter().all(|r| r.method == "GET"),
        "nothing was changed"
    );
}

#[tokio::test]
async fn discover_drift_and_dormant_from_the_command_line() {
    let (sim, dir) = policy_without_approvals().await;
    let output = portcullis(dir.path(), &["apply", "--at", "2027-01-04"]).await;
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );

    let output = portcullis(dir.path(), &["discover", "--at", "2027-01-05"]).await;
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        text.contains("github-acme") && text.contains("2 resources in scope"),
        "{text}"
    );

    // Someone adds Mona (Sales) by hand to a repository the policy manages.
    sim.set_collaborator("acme/platform-api", "monalisa", "write");
    let output = portcullis(dir.path(), &["drift", "--at", "2027-01-05"]).await;
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.contains("outside policy: 1"), "{text}");
    assert!(text.contains("monalisa = E2"), "{text}");
    assert!(
        text.contains("[portcullis-bot] held admin wanted no: subject portcullis-bot is no one"),
        "the bot's own access is listed as unmanaged: {text}"
    );
    // Declared as the app's automation, it is no longer listed.
    let config = std::fs::read_to_string(dir.path().join("portcullis.toml")).expect("config");
    std::fs::write(
        dir.path().join("portcullis.toml"),
        format!("{config}ignore_subjects = [\"portcullis-bot\"]\n"),
    )
    .expect("config");
    let output = portcullis(dir.path(), &["drift", "--at", "2027-01-05"]).await;
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("outside policy: 1"), "{text}");
    assert!(!text.contains("portcullis-bot"), "{text}");
    assert_eq!(
        sim.collaborator_role("acme/platform-api", "monalisa")
            .as_deref(),
        Some("write"),
        "report only"
    );
    // One revoke against two managed grants is over the 20% share, but a run of so few
    // revokes is not a blast radius unless share_min_revokes says so.
    let config = std::fs::read_to_string(dir.path().join("portcullis.toml")).expect("config");
    std::fs::write(
        dir.path().join("portcullis.toml"),
        format!("[engine]\nshare_min_revokes = 0\n{config}"),
    )
    .expect("config");
    let output = portcullis(dir.path(), &["drift", "--apply", "--at", "2027-01-05"]).await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("blast-radius") && stderr.contains("engine.share_min_revokes = 0"),
        "{stderr}"
    );
    assert_eq!(
        sim.collaborator_role("acme/platform-api", "monalisa")
            .as_deref(),
        Some("write"),
        "nothing ran"
    );
    let output = portcullis(
        dir.path(),
        &[
            "drift",
            "--apply",
            "--allow-large-revoke",
            "--at",
            "2027-01-05",
        ],
    )
    .await;
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(sim.collaborator_role("acme/platform-api", "monalisa"), None);
    assert_eq!(
        sim.collaborator_role("acme/platform-api", "hubot")
            .as_deref(),
        Some("maintain")
    );

    // Hubot has not used platform-infra since August: dormant, revoked once approved.
    std::fs::write(
        dir.path().join("usage.json"),
        r#"{ "usage": [
          { "app": "github-acme", "subject": "hubot", "kind": "repository",
            "resource": "acme/platform-infra", "last_used_at": "2026-08-01" },
          { "app": "github-acme", "subject": "hubot", "kind": "repository",
            "resource": "acme/platform-api", "last_used_at": "2027-01-02" } ] }"#,
    )
    .expect("usage");
    let output = portcullis(
        dir.path(),
        &[
            "--json",
            "dormant",
            "--usage",
            "usage.json",
            "--at",
            "2027-01-06",
        ],
    )
    .await;
    let doc = stdout_json(&output);
    assert_eq!(doc["dormant"].as_array().map(Vec::len), Some(1), "{doc}");
    assert_eq!(
        doc["dormant"][0]["target"]["resource"], "acme/platform-infra",
        "{doc}"
    );
    let id = doc["approvals"][0]["id"]
        .as_i64()
        .expect("approval")
        .to_string();
    let output = portcullis(
        dir.path(),
        &[
            "approve",
            &id,
            "--by",
            "carol",
            "--reason",
            "unused since August",
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(0));
    // One of two managed grants: over the 20% share, so the override is needed here too.
    let output = portcullis(
        dir.path(),
        &["apply", "--allow-large-revoke", "--at", "2027-01-07"],
    )
    .await;
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert_eq!(sim.collaborator_role("acme/platform-infra", "hubot"), None);
    // Held: the rule still matches, but the grant does not come back.
    let output = portcullis(dir.path(), &["plan", "--at", "2027-01-08"]).await;
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("! repository acme/platform-infra"), "{text}");
    assert!(text.contains("0 to grant"), "{text}");
}

#[tokio::test]
async fn a_saved_plan_runs_exactly_or_not_at_all() {
    let (sim, dir) = policy_without_approvals().await;

    let output = portcullis(
        dir.path(),
        &["plan", "--at", "2027-01-04", "--out", "reviewed.json"],
    )
    .await;
    assert_eq!(output.status.code(), Some(0));
    assert!(dir.path().join("reviewed.json").is_file());

    // Someone joins the directory after the review: the saved plan is stale.
    std::fs::write(
        dir.path().join("people.json"),
        CLI_PEOPLE.replace(r#""department": "Sales""#, r#""department": "Platform""#),
    )
    .expect("people");
    let output = portcullis(dir.path(), &["apply", "--plan", "reviewed.json"]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("stale") && stderr.contains("E2"),
        "names who changed: {stderr}"
    );
    assert!(
        sim.requests().iter().all(|r| r.method == "GET"),
        "nothing ran"
    );

    // Back as reviewed: it runs, at the saved plan's time.
    std::fs::write(dir.path().join("people.json"), CLI_PEOPLE).expect("people");
    let output = portcullis(dir.path(), &["--json", "apply", "--plan", "reviewed.json"]).await;
    let doc = stdout_json(&output);
    assert_eq!(output.status.code(), Some(0), "{doc}");
    assert_eq!(doc["plan"]["at"], "2027-01-04T00:00:00Z", "{doc}");
    assert_eq!(
        sim.collaborator_role("acme/platform-api", "hubot")
            .as_deref(),
        Some("maintain")
    );
    let output = portcullis(
        dir.path(),
        &["apply", "--plan", "reviewed.json", "--at", "2027-02-01"],
    )
    .await;
    assert_eq!(
        output.status.code(),
        Some(2),
        "--at must match the saved plan"
    );
}

#[tokio::test]
async fn a_run_that_changes_apps_is_refused_while_another_holds_the_state() {
    use portcullis::state::{SqliteStore, StateStore};

    let (sim, dir) = policy_without_approvals().await;

    // Another run (here: this test process) is working on the state.
    let store = SqliteStore::open(&dir.path().join("state/portcullis.db")).expect("state");
    let held = store
        .lock_run("pid 4242 running `portcullis apply` since 2027-01-04T00:00:00Z")
        .expect("lock");

    for args in [
        &["apply", "--at", "2027-01-04"][..],
        &["drift", "--apply", "--at", "2027-01-04"][..],
    ] {
        let output = portcullis(dir.path(), args).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("pid 4242 running `portcullis apply`")
                && stderr.contains("nothing was run"),
            "names the holder: {stderr}"
        );
    }
    assert!(
        sim.requests().iter().all(|r| r.method == "GET"),
        "nothing ran"
    );
    assert_eq!(store.runs().expect("runs").len(), 0, "no run was recorded");
    // Reading needs no lock.
    let output = portcullis(dir.path(), &["plan", "--at", "2027-01-04"]).await;
    assert_eq!(output.status.code(), Some(0));

    // The lock ends with its holder; the next apply runs.
    drop(held);
    let output = portcullis(dir.path(), &["apply", "--at", "2027-01-04"]).await;
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        sim.collaborator_role("acme/platform-api", "hubot")
            .as_deref(),
        Some("maintain")
    );
}

/// The adversarial fixture plugin, built by host/build.rs for these tests.
const HOSTILE: &str = env!("PORTCULLIS_HOSTILE_FIXTURE");
/// The injected token: it may reach the origin in the Authorization header, nowhere else.
const CANARY: &str = "canary-CLI-TOKEN-4b7e21c9";

/// Characters that must never reach a terminal from a plugin.
fn assert_terminal_safe(what: &str, text: &str) {
    for c in [
        '\x1b', '\r', '\x07', '\u{202e}', '\u{2028}', '\u{2066}', '\u{9b}',
    ] {
        assert!(!text.contains(c), "{what} carries {c:?}:\n{text}");
    }
    assert!(
        !text.lines().any(|l| l.starts_with("2026-12-07T00:00:00Z")
            || l.trim_start().starts_with("INFO portcullis::audit")),
        "{what} has a forged line:\n{text}"
    );
}

#[tokio::test]
async fn hostile_plugin_strings_are_escaped_and_secrets_never_leave_through_the_host() {
    let origin = portcullis_simulators::ReflectingOrigin::start()
        .await
        .expect("origin starts");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("token"), format!("{CANARY}\n")).expect("token");
    let base_url = origin.base_url();
    std::fs::write(
        dir.path().join("portcullis.toml"),
        format!(
            r#"
[audit]
path = "audit.jsonl"

[state]
path = "state/portcullis.db"

[limits]
list_max_pages = 20

[apps.evil]
plugin = "{HOSTILE}"
base_url = "{base_url}"
secrets = {{ token = "file:token" }}
network = {{ allow_loopback = true }}
settings = {{ check = "terminal" }}

[apps.thief]
plugin = "{HOSTILE}"
base_url = "{base_url}"
secrets = {{ token = "file:token" }}
network = {{ allow_loopback = true }}
settings = {{ check = "reflect" }}

[apps.broken]
plugin = "{HOSTILE}"
base_url = "{base_url}"
secrets = {{ token = "env:PORTCULLIS_CLI_HOSTILE_UNSET" }}
network = {{ allow_loopback = true }}
"#
        ),
    )
    .expect("config");
    let mut outputs = Vec::new();
    // Plugin log lines are info: shown, so their escaping is checked too.
    let mut run = async |args: &[&str]| {
        let output =
            portcullis_with_env(dir.path(), args, &[("RUST_LOG", "portcullis=info")]).await;
        outputs.push((args.join(" "), output.clone()));
        output
    };

    // Every plugin-supplied string in text output: a check principal, scopes and
    // warnings, a pending message, an observed level, listed subjects.
    let check = run(&["check", "--app", "evil"]).await;
    let stdout = String::from_utf8_lossy(&check.stdout).into_owned();
    assert!(stdout.contains("\\u{1b}]0;pwned"), "{stdout}");
    let grant = run(&[
        "grant",
        "--app",
        "evil",
        "--subject",
        "x",
        "--kind",
        "terminal-escape",
        "--resource",
        "r",
    ])
    .await;
    assert!(String::from_utf8_lossy(&grant.stdout).contains("\\r\\n2026-12-07"));
    run(&["list-grants", "--app", "evil", "--kind", "list-escape"]).await;
    // Plugin log lines with bidi overrides and separators, at a level that is shown.
    run(&[
        "grant",
        "--app",
        "evil",
        "--subject",
        "x",
        "--kind",
        "log-bidi",
        "--resource",
        "r",
    ])
    .await;

    // A listing that repeats its cursor ends, shows what it read, and says it is partial.
    let listing = run(&[
        "list-grants",
        "--app",
        "evil",
        "--kind",
        "list-same-cursor",
        "--all",
    ])
    .await;
    let text = String::from_utf8_lossy(&listing.stdout).into_owned();
    assert_eq!(listing.status.code(), Some(1), "{text}");
    assert_eq!(text.matches("user-").count(), 4, "{text}");
    assert!(text.contains("PARTIAL") && text.contains("again"), "{text}");
    let json = stdout_json(
        &run(&[
            "list-grants",
            "--app",
            "evil",
            "--kind",
            "list-same-cursor",
            "--all",
            "--json",
        ])
        .await,
    );
    assert_eq!(json["complete"], false);
    assert_eq!(json["grants"].as_array().map(Vec::len), Some(4));

    // The token reflected by the origin, returned as the principal and sent on in a query
    // string, and listed as subjects into state by discovery.
    let stolen = run(&["check", "--app", "thief"]).await;
    assert!(
        String::from_utf8_lossy(&stolen.stdout).contains("[redacted:token]"),
        "{}",
        String::from_utf8_lossy(&stolen.stdout)
    );
    run(&["discover", "--app", "thief"]).await;

    // One app's missing secret fails that app alone, naming it.
    let broken = run(&["check", "--app", "broken"]).await;
    let stderr_and_out = format!(
        "{}{}",
        String::from_utf8_lossy(&broken.stdout),
        String::from_utf8_lossy(&broken.stderr)
    );
    assert_ne!(broken.status.code(), Some(0));
    assert!(
        stderr_and_out.contains("apps.broken.secrets.token")
            && stderr_and_out.contains("PORTCULLIS_CLI_HOSTILE_UNSET"),
        "{stderr_and_out}"
    );
    assert_eq!(
        run(&["check", "--app", "evil"]).await.status.code(),
        Some(0)
    );

    for (args, output) in &outputs {
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !args.contains("--json") {
            assert_terminal_safe(&format!("stdout of {args}"), &stdout);
        }
        // Log lines, and no colour codes when stderr is not a terminal.
        assert_terminal_safe(&format!("stderr of {args}"), &stderr);
        assert!(!stdout.contains(CANARY), "stdout of {args}: {stdout}");
        assert!(!stderr.contains(CANARY), "stderr of {args}: {stderr}");
    }
    let audit = std::fs::read(dir.path().join("audit.jsonl")).expect("audit trail");
    assert!(!audit.is_empty());
    let contains = |haystack: &[u8]| {
        haystack
            .windows(CANARY.len())
            .any(|w| w == CANARY.as_bytes())
    };
    assert!(!contains(&audit), "the audit trail holds the token");
    for entry in std::fs::read_dir(dir.path().join("state")).expect("state dir") {
        let path = entry.expect("entry").path();
        let bytes = std::fs::read(&path).expect("state file");
        assert!(!contains(&bytes), "{} holds the token", path.display());
    }
    let received = origin.received();
    assert!(received.len() >= 3, "{received:?}");
    for request in &received {
        assert!(!request.target.contains(CANARY), "{}", request.target);
        assert!(!contains(&request.body));
        for (name, value) in &request.headers {
            if name != "authorization" {
                assert!(!value.contains(CANARY), "{name}: {value}");
            }
        }
    }
}

#[tokio::test]
async fn audit_verify_passes_an_untouched_trail_and_names_the_first_tampered_record() {
    let sim = github_demo().await.expect("simulator");
    sim.set_collaborator("acme/platform-api", "hubot", "read");
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(dir.path(), &sim.base_url());
    let output = portcullis(
        dir.path(),
        &[
            "grant",
            "--app",
            "github-acme",
            "--subject",
            "hubot",
            "--kind",
            "repository",
            "--resource",
            "acme/platform-api",
            "--level",
            "maintain",
        ],
    )
    .await;
    assert_eq!(output.status.code(), Some(0));
    let output = portcullis(dir.path(), &["audit", "verify"]).await;
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(text.contains("chain intact (seq 1.."), "{text}");
    assert!(text.contains("signed checkpoints hold"), "{text}");

    // The auditor's key, a proof of record 1 checked with it, and the records as CSV.
    let key = portcullis(dir.path(), &["audit", "key"]).await;
    let key = String::from_utf8_lossy(&key.stdout).trim().to_owned();
    assert!(key.starts_with("ed25519:") && key.len() == 72, "{key}");
    let output = portcullis(dir.path(), &["audit", "verify", "--key", &key]).await;
    assert_eq!(output.status.code(), Some(0));
    let other = format!("ed25519:{}", "3b".repeat(32));
    let output = portcullis(dir.path(), &["audit", "verify", "--key", &other]).await;
    assert_ne!(
        output.status.code(),
        Some(0),
        "another key is not this trail's"
    );
    let proof = portcullis(dir.path(), &["audit", "prove", "1"]).await;
    assert_eq!(
        proof.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&proof.stderr)
    );
    std::fs::write(dir.path().join("proof.json"), &proof.stdout).expect("proof");
    let output = portcullis(
        dir.path(),
        &["audit", "check-proof", "proof.json", "--key", &key],
    )
    .await;
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let csv = portcullis(
        dir.path(),
        &[
            "audit",
            "query",
            "--app",
            "github-acme",
            "--kind",
            "action-started,call-finished",
            "--csv",
        ],
    )
    .await;
    let csv = String::from_utf8_lossy(&csv.stdout);
    assert!(
        csv.starts_with("seq,at,event,app,run,person,subject,entitlement,outcome,trigger"),
        "{csv}"
    );
    assert!(csv.contains("call-finished,github-acme"), "{csv}");
    assert!(!csv.contains("secret-revealed"), "{csv}");

    // One byte of the first record changed: the second no longer follows it.
    let trail = dir.path().join("audit.jsonl");
    let original = std::fs::read_to_string(&trail).expect("trail");
    let first_end = original.find('\n').expect("a line");
    let tampered = format!(
        "{}{}",
        original[..first_end].replacen("github-acme", "github-acmf", 1),
        &original[first_end..]
    );
    std::fs::write(&trail, tampered).expect("tamper");
    let output = portcullis(dir.path(), &["--json", "audit", "verify"]).await;
    assert_eq!(output.status.code(), Some(1));
    let doc = stdout_json(&output);
    assert_eq!(doc["line"], 2, "{doc}");
    assert!(
        doc["error"]
            .as_str()
            .unwrap_or("")
            .contains("line 1 was changed"),
        "{doc}"
    );
    let output = portcullis(dir.path(), &["audit", "verify", "--file", "nowhere.jsonl"]).await;
    assert_eq!(output.status.code(), Some(2));
}

#[tokio::test]
async fn demo_dir_keeps_a_trail_that_verifies_and_answers_who_what_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = portcullis(dir.path(), &["demo", "--dir", "josh"]).await;
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let config = "josh/portcullis.toml";
    let output = portcullis(dir.path(), &["--config", config, "audit", "verify"]).await;
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(text.contains("signed checkpoints hold"), "{text}");
    let output = portcullis(
        dir.path(),
        &[
            "--json",
            "--config",
            config,
            "audit",
            "query",
            "--person",
            "E1001",
            "--kind",
            "action-started",
        ],
    )
    .await;
    let doc = stdout_json(&output);
    let records = doc["records"].as_array().expect("records");
    assert!(records.len() >= 22, "{doc}");
    // The hire's grants name the HR event and the rules behind them.
    let hire = &records[0]["trigger"];
    assert_eq!(hire["hr_event"], "HR-4711", "{hire}");
    assert_eq!(hire["person"], "E1001", "{hire}");
    assert_eq!(hire["source"], "demo", "{hire}");
    assert!(
        hire["rules"].as_array().is_some_and(|r| !r.is_empty()),
        "{hire}"
    );
    // The leaver's revokes name the termination.
    assert!(
        records
            .iter()
            .any(|r| r["op"] == "revoke" && r["trigger"]["hr_event"] == "HR-4901"),
        "{doc}"
    );
}
