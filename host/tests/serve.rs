//! `portcullis serve` as IT runs it: the binary on loopback against the GitHub simulator,
//! bearer tokens with roles, signed HR events (joiner, leaver, replays, bad signatures),
//! jobs, the audit trail, and a graceful stop on SIGTERM.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use portcullis::plugin::sha256_hex;
use portcullis::service::hr::sign;
use portcullis_simulators::{GITHUB_DEMO_TOKEN, GithubSimulator, github_demo};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
const OPS_TOKEN: &str = "ops-token-0123456789abcdef";
const READER_TOKEN: &str = "reader-token-0123456789abcdef";
const HR_TOKEN: &str = "hr-token-0123456789abcdef";
const HR_SECRET: &str = "whsec-hr-0123456789abcdef";

const POLICY: &str = r#"
[[rule]]
name = "platform"
when = 'person.department == "Platform"'

[[rule.grant]]
app = "github-acme"
kind = "repository"
resource = "acme/platform-api"
level = "maintain"
"#;

const PEOPLE: &str = r#"{ "people": [
  { "id": "E1", "name": "Hu Bot", "attributes": { "department": "Platform" },
    "accounts": { "github-acme": "hubot" } }
] }"#;

fn write_files(dir: &Path, sim: &GithubSimulator, policy: &str, schedule: &str) {
    for (file, value) in [
        ("github.token", GITHUB_DEMO_TOKEN),
        ("ops.token", OPS_TOKEN),
        ("reader.token", READER_TOKEN),
        ("hr.token", HR_TOKEN),
        ("hr.secret", HR_SECRET),
    ] {
        std::fs::write(dir.join(file), format!("{value}\n")).expect("secret file");
    }
    std::fs::write(dir.join("policy.toml"), policy).expect("policy");
    std::fs::write(dir.join("people.json"), PEOPLE).expect("people");
    std::fs::write(
        dir.join("portcullis.toml"),
        format!(
            r#"
[audit]
path = "audit.jsonl"
[state]
path = "state/portcullis.db"
[policy]
path = "policy.toml"
[people]
directory = "people.json"

[server]
listen = "127.0.0.1:0"
[[server.tokens]]
name = "it-ops"
role = "operator"
secret = "file:ops.token"
[[server.tokens]]
name = "auditor"
role = "reader"
secret = "file:reader.token"
[[server.tokens]]
name = "workday"
role = "hr-source"
secret = "file:hr.token"
[server.hr_webhook]
secret = "file:hr.secret"
[server.schedule]
{schedule}

[apps.github-acme]
plugin = "github"
base_url = "{}"
secrets = {{ token = "file:github.token" }}
network = {{ allow_loopback = true }}
"#,
            sim.base_url()
        ),
    )
    .expect("config");
}

/// The binary with its environment for a test directory.
fn command(dir: &Path) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(BIN);
    command
        .current_dir(dir)
        .env("XDG_CACHE_HOME", dir.join("cache"))
        .env_remove("PORTCULLIS_CONFIG");
    command
}

/// One CLI command in `dir`, run to its end.
async fn cli(dir: &Path, args: &[&str]) -> std::process::Output {
    command(dir)
        .args(args)
        .output()
        .await
        .expect("the binary runs")
}

struct Served {
    child: tokio::process::Child,
    url: String,
    http: reqwest::Client,
}

impl Served {
    async fn start(dir: &Path) -> Served {
        let mut child = command(dir)
            .arg("serve")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the binary starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(120), lines.next_line())
            .await
            .expect("listening within 120 s")
            .expect("stdout readable")
            .expect("a line on stdout");
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in {line:?}"))
            .to_owned();
        Served {
            child,
            url,
            http: reqwest::Client::new(),
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.expect("the service answers");
        let status = response.status().as_u16();
        let bytes = response.bytes().await.expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn hr(&self, body: &str, signature: Option<String>) -> (u16, Value) {
        let mut request = self
            .http
            .post(format!("{}/v1/hr-events", self.url))
            .bearer_auth(HR_TOKEN)
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(signature) = signature {
            request = request.header("X-Portcullis-Signature", signature);
        }
        let response = request.send().await.expect("the service answers");
        let status = response.status().as_u16();
        let bytes = response.bytes().await.expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Waits for the reconcile the service runs at start (it grants E1's access).
    async fn first_reconcile(&self) {
        for _ in 0..1200 {
            let (_, body) = self
                .call(reqwest::Method::GET, "/v1/jobs", Some(READER_TOKEN), None)
                .await;
            let done = body["scheduled"].as_array().is_some_and(|s| {
                s.iter()
                    .any(|j| j["name"] == "reconcile" && !j["last_outcome"].is_null())
            });
            if done {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the first reconcile did not finish within 60 s");
    }

    /// How many reconciles have finished, from the number in the last one's job id.
    async fn reconcile_runs(&self) -> u64 {
        let (_, body) = self
            .call(reqwest::Method::GET, "/v1/jobs", Some(READER_TOKEN), None)
            .await;
        body["jobs"]
            .as_array()
            .map(|jobs| {
                jobs.iter()
                    .filter(|j| j["kind"] == "reconcile" && !j["finished_at"].is_null())
                    .count() as u64
            })
            .unwrap_or(0)
    }

    /// Waits for a job to finish and returns it.
    async fn finished(&self, id: &str) -> Value {
        for _ in 0..600 {
            let (status, body) = self
                .call(
                    reqwest::Method::GET,
                    &format!("/v1/jobs/{id}"),
                    Some(READER_TOKEN),
                    None,
                )
                .await;
            assert_eq!(status, 200, "{body}");
            if !body["job"]["finished_at"].is_null() {
                return body["job"].clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("job {id} did not finish within 30 s");
    }
}

fn signed(body: &str) -> Option<String> {
    Some(sign(
        HR_SECRET,
        chrono::Utc::now().timestamp(),
        body.as_bytes(),
    ))
}

fn today() -> String {
    chrono::Utc::now().format("%Y-%m-%d").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hr_events_become_verified_grants_and_every_call_is_authenticated_and_audited() {
    let sim = github_demo().await.expect("simulator");
    // Already collaborators: grants apply at once instead of inviting.
    sim.set_collaborator("acme/platform-api", "hubot", "read");
    sim.set_collaborator("acme/platform-api", "octocat", "read");
    let dir = tempfile::tempdir().expect("tempdir");
    // Reconcile runs at start, then hourly: the HR-event jobs are what applies changes.
    write_files(
        dir.path(),
        &sim,
        POLICY,
        "reconcile_every_s = 3600\ndrift_every_s = 0\ndormant_every_s = 0",
    );
    let served = Served::start(dir.path()).await;
    use reqwest::Method;

    served.first_reconcile().await;

    // Health needs no token; the API needs one, of the right role.
    let (status, _) = served.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, 200);
    let (status, body) = served.call(Method::GET, "/v1/plan", None, None).await;
    assert_eq!(status, 401, "{body}");
    let (status, _) = served
        .call(
            Method::GET,
            "/v1/plan",
            Some("not-a-valid-token-at-all"),
            None,
        )
        .await;
    assert_eq!(status, 401);
    let (status, body) = served
        .call(Method::POST, "/v1/apply", Some(READER_TOKEN), None)
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or("")
            .contains("auditor holds role reader"),
        "{body}"
    );
    let (status, body) = served
        .call(Method::GET, "/v1/openapi.json", None, None)
        .await;
    assert_eq!(status, 200);
    assert!(body["paths"]["/v1/hr-events"]["post"].is_object(), "{body}");

    // While the service holds the state, a CLI run that changes apps is refused by name.
    let refused = cli(dir.path(), &["apply"]).await;
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("`portcullis serve` at http://127.0.0.1:"),
        "{stderr}"
    );

    // So is a one-off grant.
    let refused = cli(
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
            "read",
        ],
    )
    .await;
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("`portcullis serve` at"));

    // A joiner, signed by the HR system.
    let hire = json!({ "events": [{
        "id": "wd-1001", "type": "hire", "person": "E3", "effective": today(),
        "name": "Octo Cat", "attributes": { "department": "Platform" },
        "accounts": { "github-acme": "octocat" },
    }] })
    .to_string();
    // Unsigned, wrongly signed and stale deliveries are refused; nothing is stored.
    let (status, _) = served.hr(&hire, None).await;
    assert_eq!(status, 401);
    let (status, _) = served
        .hr(
            &hire,
            Some(sign(
                "another-secret-entirely",
                chrono::Utc::now().timestamp(),
                hire.as_bytes(),
            )),
        )
        .await;
    assert_eq!(status, 401);
    let stale = sign(
        HR_SECRET,
        chrono::Utc::now().timestamp() - 301,
        hire.as_bytes(),
    );
    let (status, body) = served.hr(&hire, Some(stale)).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["error"].as_str().unwrap_or("").contains("tolerance_s"),
        "{body}"
    );
    // The right role is still needed with a valid signature.
    let (status, _) = served
        .call(
            Method::POST,
            "/v1/hr-events",
            Some(OPS_TOKEN),
            Some(serde_json::from_str(&hire).expect("json")),
        )
        .await;
    assert_eq!(status, 403);

    let (status, body) = served.hr(&hire, signed(&hire)).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["accepted"], json!(["wd-1001"]), "stored once: {body}");
    let job = served
        .finished(body["job"]["id"].as_str().expect("job id"))
        .await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["detail"]["verified"], 1, "{job}");
    assert_eq!(
        sim.collaborator_role("acme/platform-api", "octocat")
            .as_deref(),
        Some("maintain")
    );
    // A replay is accepted once: answered, not applied again.
    let (status, body) = served.hr(&hire, signed(&hire)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["replayed"], json!(["wd-1001"]));
    assert!(body["job"].is_null());

    // Why E3 holds what they hold.
    let (status, body) = served
        .call(
            Method::GET,
            "/v1/people/E3/grants",
            Some(READER_TOKEN),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["grants"][0]["rules"], json!(["platform"]), "{body}");
    assert_eq!(body["grants"][0]["target"]["resource"], "acme/platform-api");

    // Events about people or apps Portcullis does not know get a clear answer.
    let stranger = json!({ "events": [{ "id": "wd-1002", "type": "terminate", "person": "E404", "effective": today() }] }).to_string();
    let (status, body) = served.hr(&stranger, signed(&stranger)).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or("")
            .contains("person E404 is not in the directory"),
        "{body}"
    );
    let unknown_app = json!({ "events": [{ "id": "wd-1003", "type": "transfer", "person": "E3", "effective": today(),
        "accounts": { "jira-nowhere": "octo" } }] }).to_string();
    let (status, body) = served.hr(&unknown_app, signed(&unknown_app)).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or("")
            .contains("app `jira-nowhere` is not configured"),
        "{body}"
    );

    // A leaver.
    let leave = json!({ "events": [{ "id": "wd-1004", "type": "terminate", "person": "E3", "effective": today() }] }).to_string();
    let (status, body) = served.hr(&leave, signed(&leave)).await;
    assert_eq!(status, 202, "{body}");
    let job = served
        .finished(body["job"]["id"].as_str().expect("job id"))
        .await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(sim.collaborator_role("acme/platform-api", "octocat"), None);

    // Jobs show the scheduler's reconcile with its last and next run.
    let (_, body) = served
        .call(Method::GET, "/v1/jobs", Some(READER_TOKEN), None)
        .await;
    let reconcile = body["scheduled"]
        .as_array()
        .and_then(|s| s.iter().find(|j| j["name"] == "reconcile"))
        .cloned()
        .unwrap_or_else(|| panic!("{body}"));
    assert_eq!(reconcile["every_s"], 3600);
    assert_eq!(
        reconcile["last_outcome"], "verified",
        "E1 granted at start: {reconcile}"
    );
    assert_eq!(
        sim.collaborator_role("acme/platform-api", "hubot")
            .as_deref(),
        Some("maintain")
    );
    assert!(!reconcile["next_run"].is_null(), "{reconcile}");

    // Metrics: what happened, in the Prometheus text format that promtool accepts.
    let (status, _) = served.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(status, 401);
    let response = served
        .http
        .get(format!("{}/metrics", served.url))
        .bearer_auth(READER_TOKEN)
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap_or("")
            .starts_with("text/plain; version=0.0.4")
    );
    let metrics = response.text().await.expect("text");
    for wanted in [
        "portcullis_connector_calls_total{app=\"github-acme\",export=\"grant\",outcome=\"ok\"}",
        "portcullis_connector_call_duration_seconds_bucket{app=\"github-acme\",export=\"verify\"",
        "portcullis_http_requests_total{app=\"github-acme\",status=\"200\"}",
        "portcullis_action_verdicts_total{app=\"github-acme\",verdict=\"verified\"} 3",
        "portcullis_jobs_unfinished 0",
        "portcullis_scheduled_job_last_run_timestamp_seconds{job=\"reconcile\"}",
        "portcullis_plugin_info{app=\"github-acme\",sha256=\"",
    ] {
        assert!(metrics.contains(wanted), "no {wanted} in\n{metrics}");
    }
    promtool_check(&metrics).await;

    // SIGTERM: the service stops cleanly and lets go of the state.
    let pid = served.child.id().expect("pid");
    let mut child = served.child;
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("stops within 30 s")
        .expect("exit status");
    assert_eq!(status.code(), Some(0));
    let plan = cli(dir.path(), &["apply"]).await;
    assert_eq!(
        plan.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&plan.stderr)
    );

    // The audit trail names every caller, refusals included, and holds no token.
    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).expect("audit");
    let records: Vec<Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).expect("audit line is JSON"))
        .collect();
    let api = |caller: &str, status: u64| {
        records
            .iter()
            .any(|r| r["event"] == "api-call" && r["caller"] == caller && r["status"] == status)
    };
    assert!(api("anonymous", 401));
    assert!(api("auditor", 403));
    assert!(api("workday", 202));
    assert!(api("workday", 401), "a bad signature is audited");
    assert!(records.iter().any(|r| r["event"] == "hr-event-received"
        && r["event_id"] == "wd-1001"
        && r["replay"] == true));
    // Each action names what triggered it: the webhook's token and the HR event for
    // octocat's joiner and leaver runs, the scheduler's job for the start-up reconcile.
    let started = |subject: &str, op: &str| {
        records
            .iter()
            .find(|r| {
                r["event"] == "action-started" && r["subject"]["id"] == subject && r["op"] == op
            })
            .map(|r| r["trigger"].clone())
            .unwrap_or_else(|| panic!("no {op} of {subject} in\n{audit}"))
    };
    let hire_trigger = started("octocat", "grant");
    assert_eq!(hire_trigger["source"], "hr-webhook", "{hire_trigger}");
    assert_eq!(hire_trigger["token"], "workday", "{hire_trigger}");
    assert_eq!(hire_trigger["hr_event"], "wd-1001", "{hire_trigger}");
    assert_eq!(hire_trigger["person"], "E3", "{hire_trigger}");
    assert_eq!(hire_trigger["rules"], json!(["platform"]), "{hire_trigger}");
    let leave_trigger = started("octocat", "revoke");
    assert_eq!(leave_trigger["source"], "hr-webhook", "{leave_trigger}");
    assert_eq!(leave_trigger["hr_event"], "wd-1004", "{leave_trigger}");
    let reconcile_trigger = started("hubot", "grant");
    assert_eq!(
        reconcile_trigger["source"], "schedule",
        "{reconcile_trigger}"
    );
    assert_eq!(
        reconcile_trigger["schedule"], "reconcile",
        "{reconcile_trigger}"
    );
    assert!(reconcile_trigger["token"].is_null(), "{reconcile_trigger}");
    for secret in [
        OPS_TOKEN,
        READER_TOKEN,
        HR_TOKEN,
        HR_SECRET,
        GITHUB_DEMO_TOKEN,
    ] {
        assert!(!audit.contains(secret), "a secret reached the audit trail");
    }
}

const JIT_POLICY: &str = r#"
[[rule]]
name = "on-call"
when = 'person.department == "Platform"'

[[rule.grant]]
app = "github-acme"
kind = "repository"
resource = "acme/platform-infra"
level = "admin"
for = "3s"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_time_bound_grant_is_revoked_at_its_end_not_at_the_next_cron_run() {
    let sim = github_demo().await.expect("simulator");
    sim.set_collaborator("acme/platform-infra", "hubot", "read");
    let dir = tempfile::tempdir().expect("tempdir");
    write_files(
        dir.path(),
        &sim,
        JIT_POLICY,
        "reconcile_every_s = 1\ndrift_every_s = 0\ndormant_every_s = 0",
    );
    let served = Served::start(dir.path()).await;
    served.first_reconcile().await;
    assert_eq!(
        sim.collaborator_role("acme/platform-infra", "hubot")
            .as_deref(),
        Some("admin"),
        "granted at start"
    );
    let (_, body) = served
        .call(
            reqwest::Method::GET,
            "/v1/people/E1/grants",
            Some(READER_TOKEN),
            None,
        )
        .await;
    let expires: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(body["grants"][0]["expires_at"].clone())
            .unwrap_or_else(|e| panic!("a time-bound grant has its end ({e}): {body}"));
    let mut revoked_at = None;
    for _ in 0..600 {
        if sim
            .collaborator_role("acme/platform-infra", "hubot")
            .is_none()
        {
            revoked_at = Some(chrono::Utc::now());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let revoked_at = revoked_at.expect("revoked within 30 s of the start");
    let late = revoked_at - expires;
    eprintln!("revoked {} ms after its end", late.num_milliseconds());
    assert!(
        late >= chrono::Duration::zero(),
        "never before its end: {late}"
    );
    // Expired access is held, not granted again by the reconciles that follow.
    let after_revoke = served.reconcile_runs().await;
    for _ in 0..600 {
        if served.reconcile_runs().await >= after_revoke + 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        served.reconcile_runs().await >= after_revoke + 2,
        "two more reconciles ran"
    );
    assert_eq!(sim.collaborator_role("acme/platform-infra", "hubot"), None);
    let (_, body) = served
        .call(
            reqwest::Method::GET,
            "/v1/people/E1/grants",
            Some(READER_TOKEN),
            None,
        )
        .await;
    assert_eq!(body["grants"], json!([]), "{body}");
    assert_eq!(body["holds"][0]["reason"], "expired", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_serves_josh_through_a_signed_hire_event() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = command(dir.path())
        .args(["--json", "demo", "--serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    // `--json` output is one pretty-printed document: read until it parses.
    let started: Value = tokio::time::timeout(Duration::from_secs(180), async {
        let mut text = String::new();
        loop {
            let line = lines
                .next_line()
                .await
                .expect("stdout")
                .expect("more output");
            text.push_str(&line);
            if let Ok(value) = serde_json::from_str(&text) {
                break value;
            }
        }
    })
    .await
    .expect("listening within 180 s");
    let url = started["listening"].as_str().expect("url").to_owned();
    let demo_dir = std::path::PathBuf::from(started["dir"].as_str().expect("dir"));
    let hire = std::fs::read_to_string(demo_dir.join("josh-hire.json")).expect("hire event");
    let read = |name: &str| std::fs::read_to_string(demo_dir.join(name)).expect(name);
    let (token, hr_token, secret) = (read("demo.token"), read("hr.token"), read("hr.secret"));
    let secret = secret.as_str();
    let http = reqwest::Client::new();
    let response = http
        .post(format!("{url}/v1/hr-events"))
        .bearer_auth(&hr_token)
        .header(
            "X-Portcullis-Signature",
            sign(secret, chrono::Utc::now().timestamp(), hire.as_bytes()),
        )
        .body(hire.clone())
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status().as_u16(), 202);
    let body: Value = serde_json::from_slice(&response.bytes().await.expect("body")).expect("json");
    let job_url = body["url"].as_str().expect("job url").to_owned();
    let mut job = Value::Null;
    for _ in 0..1200 {
        let response = http
            .get(&job_url)
            .bearer_auth(&token)
            .send()
            .await
            .expect("answered");
        job = serde_json::from_slice::<Value>(&response.bytes().await.expect("body"))
            .expect("json")["job"]
            .clone();
        if !job["finished_at"].is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // GitHub invitations wait for Josh; nothing alerted. (The scheduler's first reconcile
    // may have carried out part of the hire already: both run the same plan.)
    assert_eq!(job["status"], "pending", "{job}");
    assert_eq!(job["detail"]["alerted"], 0, "{job}");
    let response = http
        .get(format!("{url}/v1/people/E1001/grants"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("answered");
    let held: Value = serde_json::from_slice(&response.bytes().await.expect("body")).expect("json");
    let grants = held["grants"].as_array().expect("grants");
    let count = |status: &str| grants.iter().filter(|g| g["status"] == status).count();
    // Josh's 22 grants without AWS: 8 GitHub invitations, the rest verified.
    assert_eq!((count("active"), count("pending")), (14, 8));
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().expect("pid").to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("stops within 30 s")
        .expect("status");
    assert_eq!(status.code(), Some(0));
    assert!(!demo_dir.exists(), "the demo's directory is deleted");
}

/// `bytes` with a custom section appended: a new file, sha256 and version of the same
/// component, as a vendor's rebuild would be.
fn rebuilt(bytes: &[u8], tag: &str) -> Vec<u8> {
    let name = b"portcullis-test-build";
    let mut payload = vec![name.len() as u8];
    payload.extend_from_slice(name);
    payload.extend_from_slice(tag.as_bytes());
    assert!(payload.len() < 128, "one-byte LEB128 size");
    let mut out = bytes.to_vec();
    out.push(0); // custom section
    out.push(payload.len() as u8);
    out.extend_from_slice(&payload);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_plugin_swapped_under_fifty_concurrent_calls_fails_none_and_a_bad_file_changes_nothing() {
    let sim = github_demo().await.expect("simulator");
    let dir = tempfile::tempdir().expect("tempdir");
    write_files(
        dir.path(),
        &sim,
        POLICY,
        "reconcile_every_s = 3600\ndrift_every_s = 0\ndormant_every_s = 0",
    );
    // A vendor's unsigned build: appending to the signed bundled bytes would (rightly) be
    // refused as a changed file.
    let original = &portcullis::signing::unsigned(
        portcullis::bundled_plugin("github").expect("bundled github"),
    )
    .expect("unsigned");
    std::fs::write(dir.path().join("github.wasm"), original).expect("plugin file");
    let config = std::fs::read_to_string(dir.path().join("portcullis.toml")).expect("config");
    std::fs::write(
        dir.path().join("portcullis.toml"),
        config.replace("plugin = \"github\"", "plugin = \"github.wasm\""),
    )
    .expect("config");
    let served = Arc::new(Served::start(dir.path()).await);
    served.first_reconcile().await;
    let sha = |served: Arc<Served>| async move {
        let (status, body) = served
            .call(
                reqwest::Method::GET,
                "/v1/plugins/github-acme",
                Some(READER_TOKEN),
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["sha256"].as_str().expect("sha256").to_owned()
    };
    assert_eq!(sha(Arc::clone(&served)).await, sha256_hex(original));

    // Fifty callers keep calling the app while its plugin file is replaced and reloaded.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let answered = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let (served, stop, answered) = (
            Arc::clone(&served),
            Arc::clone(&stop),
            Arc::clone(&answered),
        );
        callers.spawn(async move {
            let (mut ok, mut failed) = (0u32, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || ok == 0 {
                let (status, body) = served
                    .call(
                        reqwest::Method::POST,
                        "/v1/apps/github-acme/check",
                        Some(READER_TOKEN),
                        None,
                    )
                    .await;
                answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if status == 200 {
                    ok += 1;
                } else {
                    failed.push(format!("{status} {body}"));
                }
            }
            (ok, failed)
        });
    }
    // Each side of the swap gets at least 100 answered calls.
    let answered_at_least = |n: u32| {
        let answered = Arc::clone(&answered);
        async move {
            for _ in 0..1200 {
                if answered.load(std::sync::atomic::Ordering::Relaxed) >= n {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            panic!("fewer than {n} calls answered within 30 s");
        }
    };
    answered_at_least(100).await;
    let next = rebuilt(original, "2");
    std::fs::write(dir.path().join("github.wasm"), &next).expect("new plugin file");
    let (status, body) = served
        .call(
            reqwest::Method::POST,
            "/v1/plugins/reload",
            Some(OPS_TOKEN),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // The file watcher may have swapped it first; either way the new version serves.
    let outcome = &body["plugins"][0];
    assert!(
        outcome["outcome"] == "swapped" || outcome["outcome"] == "unchanged",
        "{body}"
    );
    assert_eq!(sha(Arc::clone(&served)).await, sha256_hex(&next));
    answered_at_least(answered.load(std::sync::atomic::Ordering::Relaxed) + 100).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut calls, mut failures) = (0, Vec::new());
    while let Some(joined) = callers.join_next().await {
        let (ok, failed) = joined.expect("caller");
        calls += ok;
        failures.extend(failed);
    }
    eprintln!("{calls} calls during the swap, {} failed", failures.len());
    assert!(failures.is_empty(), "{failures:?}");
    assert!(calls >= 50);

    // A broken file is refused with the reason; the version before keeps serving.
    std::fs::write(dir.path().join("github.wasm"), b"not a component").expect("bad file");
    let (status, body) = served
        .call(
            reqwest::Method::POST,
            "/v1/plugins/reload",
            Some(OPS_TOKEN),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let outcome = &body["plugins"][0];
    // The watcher may have refused it first (then this reload refuses it again).
    assert_eq!(outcome["outcome"], "refused", "{body}");
    assert!(
        outcome["reason"].as_str().unwrap_or("").contains("not"),
        "{body}"
    );
    assert_eq!(sha(Arc::clone(&served)).await, sha256_hex(&next));
    let (status, _) = served
        .call(
            reqwest::Method::POST,
            "/v1/apps/github-acme/check",
            Some(READER_TOKEN),
            None,
        )
        .await;
    assert_eq!(status, 200);
    // Only an operator reloads.
    let (status, _) = served
        .call(
            reqwest::Method::POST,
            "/v1/plugins/reload",
            Some(READER_TOKEN),
            None,
        )
        .await;
    assert_eq!(status, 403);

    // A version with a new signer widens what was accepted: it waits for an operator,
    // the accepted version keeps serving; accepted from the CLI, the next reload takes it.
    let vendor = ed25519_dalek::SigningKey::from_bytes(&[42; 32]);
    let signed = portcullis::signing::sign(&next, &vendor).expect("signed");
    std::fs::write(dir.path().join("github.wasm"), &signed).expect("signed file");
    let reload = || async {
        served
            .call(
                reqwest::Method::POST,
                "/v1/plugins/reload",
                Some(OPS_TOKEN),
                None,
            )
            .await
    };
    let (status, body) = reload().await;
    assert_eq!(status, 200, "{body}");
    let outcome = &body["plugins"][0];
    assert_eq!(outcome["outcome"], "awaiting-acceptance", "{body}");
    assert!(
        outcome["reason"]
            .as_str()
            .unwrap_or("")
            .contains("portcullis plugin accept github-acme"),
        "{body}"
    );
    assert!(
        outcome["widened"][0]
            .as_str()
            .unwrap_or("")
            .starts_with("new signer ed25519:"),
        "{body}"
    );
    assert_eq!(sha(Arc::clone(&served)).await, sha256_hex(&next));
    let accepted = cli(
        dir.path(),
        &["plugin", "accept", "github-acme", "--by", "carol"],
    )
    .await;
    assert_eq!(
        accepted.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&accepted.stderr)
    );
    let (_, body) = reload().await;
    assert_eq!(body["plugins"][0]["outcome"], "swapped", "{body}");
    assert_eq!(sha(Arc::clone(&served)).await, sha256_hex(&signed));

    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).expect("audit");
    let records: Vec<Value> = audit
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect();
    let events =
        |kind: &str| -> Vec<&Value> { records.iter().filter(|r| r["event"] == kind).collect() };
    let swapped = events("plugin-swapped");
    assert_eq!(swapped.len(), 2, "two swaps: {swapped:?}");
    assert_eq!(swapped[0]["from_sha256"], sha256_hex(original));
    assert_eq!(swapped[0]["to_sha256"], sha256_hex(&next));
    assert_eq!(swapped[1]["to_sha256"], sha256_hex(&signed));
    assert!(audit.contains("\"event\":\"plugin-swap-refused\""));
    let held = events("plugin-upgrade-held");
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0]["to_sha256"], sha256_hex(&signed));
    let by_carol: Vec<_> = events("plugin-accepted")
        .into_iter()
        .filter(|r| r["by"] == "carol")
        .collect();
    assert_eq!(by_carol.len(), 1, "{by_carol:?}");
    assert_eq!(by_carol[0]["from_sha256"], sha256_hex(&next));
    assert_eq!(by_carol[0]["to_sha256"], sha256_hex(&signed));

    // A detached signature added beside unchanged bytes is a change of who vouches: the
    // reload looks at it instead of answering "unchanged".
    let countersigner = ed25519_dalek::SigningKey::from_bytes(&[43; 32]);
    let sig = portcullis::signing::sign_detached(&signed, &countersigner).expect("sig");
    std::fs::write(dir.path().join("github.wasm.sig"), sig).expect("sig file");
    let (status, body) = reload().await;
    assert_eq!(status, 200, "{body}");
    assert_ne!(body["plugins"][0]["outcome"], "unchanged", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_job_is_alerted_to_the_webhook_with_retries_and_audited() {
    use axum::http::StatusCode;
    // A Slack-like receiver on loopback that fails the first delivery.
    let received: Arc<parking_lot::Mutex<Vec<Value>>> = Arc::default();
    let hits = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let app = {
        let (received, hits) = (Arc::clone(&received), Arc::clone(&hits));
        axum::Router::new().route(
            "/hooks/T000/B000/secret-part",
            axum::routing::post(move |body: axum::body::Bytes| {
                let (received, hits) = (Arc::clone(&received), Arc::clone(&hits));
                async move {
                    if hits.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                        return StatusCode::SERVICE_UNAVAILABLE;
                    }
                    received
                        .lock()
                        .push(serde_json::from_slice(&body).unwrap_or(Value::Null));
                    StatusCode::OK
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let hook = format!(
        "http://{}/hooks/T000/B000/secret-part",
        listener.local_addr().expect("addr")
    );
    tokio::spawn(async move { axum::serve(listener, app).await });

    let sim = github_demo().await.expect("simulator");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("alert.url"), &hook).expect("url file");
    write_files(
        dir.path(),
        &sim,
        POLICY,
        "reconcile_every_s = 3600\ndrift_every_s = 0\ndormant_every_s = 0\n\
         [[server.alerts]]\nname = \"it-slack\"\nurl = \"file:alert.url\"\nformat = \"slack\"",
    );
    let served = Served::start(dir.path()).await;
    served.first_reconcile().await;
    // The policy breaks: the next apply fails before anything runs, and someone must know.
    std::fs::write(dir.path().join("policy.toml"), "[[rule]]\nname = 1\n").expect("policy");
    let (status, body) = served
        .call(reqwest::Method::POST, "/v1/apply", Some(OPS_TOKEN), None)
        .await;
    assert_eq!(status, 202, "{body}");
    let job = served
        .finished(body["job"]["id"].as_str().expect("id"))
        .await;
    assert_eq!(job["status"], "failed", "{job}");
    for _ in 0..200 {
        if !received.lock().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = received.lock().clone();
    assert_eq!(got.len(), 1, "delivered once, after one retry: {got:?}");
    let text = got[0]["text"].as_str().expect("slack text");
    assert!(
        text.contains("apply job") && text.contains("failed"),
        "{text}"
    );
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 2);
    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).expect("audit");
    let delivery: Value = audit
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|r| r["event"] == "alert-delivery")
        .expect("the delivery is audited");
    assert_eq!(delivery["delivered"], true);
    assert_eq!(delivery["attempts"], 2);
    assert!(audit.contains("\"event\":\"alert\""));
    assert!(
        !audit.contains("secret-part"),
        "the webhook URL is a secret"
    );
}

/// `promtool check metrics` (Debian's prometheus package) accepts the exposition. Outside
/// CI a machine without promtool skips this check, saying so; under CI=true it fails.
async fn promtool_check(metrics: &str) {
    use tokio::io::AsyncWriteExt as _;
    let spawned = tokio::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            let why = format!(
                "promtool not found ({e}); install Debian's prometheus package (.ci/run does)"
            );
            assert!(std::env::var_os("CI").is_none(), "{why}");
            eprintln!("skipping the promtool check: {why}");
            return;
        }
    };
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(metrics.as_bytes()).await.expect("write");
    drop(stdin);
    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("promtool answers within 30 s")
        .expect("promtool runs");
    assert!(
        output.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

const SIX_REPOS: [&str; 6] = [
    "acme/svc-a",
    "acme/svc-b",
    "acme/svc-c",
    "acme/svc-d",
    "acme/svc-e",
    "acme/svc-f",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_run_finishes_what_started_and_a_restart_writes_nothing_twice() {
    let sim = github_demo().await.expect("simulator");
    let mut policy =
        String::from("[[rule]]\nname = \"platform\"\nwhen = 'person.department == \"Platform\"'\n");
    for repo in SIX_REPOS {
        sim.add_repo(repo);
        // The token's account administers the repository, as a real GitHub App would.
        sim.set_collaborator(
            repo,
            portcullis_simulators::github::GITHUB_DEMO_BOT,
            "admin",
        );
        sim.set_collaborator(repo, "hubot", "read");
        policy.push_str(&format!(
            "\n[[rule.grant]]\napp = \"github-acme\"\nkind = \"repository\"\nresource = \"{repo}\"\nlevel = \"maintain\"\n"
        ));
    }
    // Slow answers, so the first reconcile is still running when SIGTERM arrives.
    sim.faults().slow_responses(40, Duration::from_millis(250));
    let dir = tempfile::tempdir().expect("tempdir");
    write_files(
        dir.path(),
        &sim,
        &policy,
        "reconcile_every_s = 3600\ndrift_every_s = 0\ndormant_every_s = 0",
    );
    let served = Served::start(dir.path()).await;
    let writes = |sim: &GithubSimulator| {
        sim.requests()
            .iter()
            .filter(|r| r.method == "PUT" && r.path.contains("/collaborators/hubot"))
            .map(|r| r.path.clone())
            .collect::<Vec<_>>()
    };
    for _ in 0..400 {
        if !writes(&sim).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        !writes(&sim).is_empty(),
        "the run started writing: {:?}",
        sim.requests()
            .iter()
            .map(|r| format!("{} {} {}", r.method, r.path, r.status))
            .collect::<Vec<_>>()
    );
    let (_, body) = served
        .call(reqwest::Method::GET, "/v1/jobs", Some(READER_TOKEN), None)
        .await;
    assert!(
        body["scheduled"][0]["last_outcome"].is_null(),
        "SIGTERM comes while the run is in flight: {body}"
    );
    let mut child = served.child;
    let pid = child.id().expect("pid").to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("stops within 60 s")
        .expect("status");
    assert_eq!(status.code(), Some(0));
    // What had started finished and was recorded: the run ended, every grant is managed.
    {
        let store = portcullis::state::SqliteStore::open(&dir.path().join("state/portcullis.db"))
            .expect("state");
        use portcullis::state::StateStore as _;
        let runs = store.runs().expect("runs");
        assert!(runs.iter().all(|r| r.finished_at.is_some()), "{runs:?}");
        assert_eq!(store.managed().expect("managed").len(), SIX_REPOS.len());
    }
    let before = writes(&sim);
    // A restart plans from state: nothing is left to do, and nothing is written again.
    let served = Served::start(dir.path()).await;
    served.first_reconcile().await;
    let (_, body) = served
        .call(reqwest::Method::GET, "/v1/jobs", Some(READER_TOKEN), None)
        .await;
    assert_eq!(
        body["scheduled"][0]["last_outcome"], "nothing to do",
        "{body}"
    );
    assert_eq!(writes(&sim), before, "no write was repeated");
    let mut per_repo = std::collections::BTreeMap::new();
    for path in &before {
        *per_repo.entry(path.clone()).or_insert(0) += 1;
    }
    assert!(
        per_repo.values().all(|n| *n == 1),
        "one write per grant: {per_repo:?}"
    );
    assert_eq!(per_repo.len(), SIX_REPOS.len());
    for repo in SIX_REPOS {
        assert_eq!(
            sim.collaborator_role(repo, "hubot").as_deref(),
            Some("maintain")
        );
    }
}

#[tokio::test]
async fn a_service_without_tokens_or_with_a_missing_secret_does_not_start_and_says_why() {
    let sim = github_demo().await.expect("simulator");
    let dir = tempfile::tempdir().expect("tempdir");
    write_files(dir.path(), &sim, POLICY, "reconcile_every_s = 3600");
    let config = std::fs::read_to_string(dir.path().join("portcullis.toml")).expect("config");
    // No tokens: every call would be refused, so the service refuses to start.
    let without_tokens: String = config
        .split("[[server.tokens]]")
        .next()
        .expect("head")
        .to_owned()
        + &config[config.find("[server.hr_webhook]").expect("webhook")..];
    std::fs::write(dir.path().join("portcullis.toml"), without_tokens).expect("config");
    let output = tokio::time::timeout(Duration::from_secs(120), cli(dir.path(), &["serve"]))
        .await
        .expect("exits");
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("[server] has no tokens"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // A token whose secret cannot be read names the token and the source.
    std::fs::write(dir.path().join("portcullis.toml"), &config).expect("config");
    std::fs::remove_file(dir.path().join("reader.token")).expect("remove");
    let output = tokio::time::timeout(Duration::from_secs(120), cli(dir.path(), &["serve"]))
        .await
        .expect("exits");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("server.tokens[1] (auditor).secret"),
        "{stderr}"
    );
}
