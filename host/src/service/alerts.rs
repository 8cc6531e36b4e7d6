//! Alerts: a job that failed or did not converge (an alerted action, a run the
//! blast-radius guard stopped, a scheduled job that failed) needs a person. Each alert is
//! an `alert` record in the audit trail, then goes to every `[[server.alerts]]` webhook
//! with retries; each delivery, and each delivery that failed after every attempt, is
//! audited, so an alert is never lost silently.

use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Value, json};

use crate::config::{AlertFormat, AlertSinkConfig};

/// Attempts per delivery, and the first wait between them (doubling).
const ATTEMPTS: u32 = 3;
const FIRST_WAIT: Duration = Duration::from_millis(500);

/// A configured alert webhook with its URL loaded.
pub(super) struct AlertSink {
    pub name: String,
    url: SecretString,
    format: AlertFormat,
}

/// Loads each sink's URL now: a service whose alerts cannot go anywhere must not start.
pub(super) fn load_sinks(sinks: &[AlertSinkConfig]) -> Result<Vec<AlertSink>, String> {
    sinks
        .iter()
        .enumerate()
        .map(|(i, sink)| {
            let url = sink
                .url
                .load()
                .map_err(|e| format!("server.alerts[{i}] ({}).url: {e}", sink.name))?;
            if url::Url::parse(url.expose_secret())
                .map(|u| !matches!(u.scheme(), "http" | "https"))
                .unwrap_or(true)
            {
                return Err(format!(
                    "server.alerts[{i}] ({}).url is not an http(s) URL",
                    sink.name
                ));
            }
            crate::redact::register(
                "server",
                [(format!("alert-{}", sink.name).as_str(), url.expose_secret())],
            );
            Ok(AlertSink {
                name: sink.name.clone(),
                url,
                format: sink.format,
            })
        })
        .collect()
}

/// The body `format` sends for an alert.
pub(super) fn body(format: AlertFormat, summary: &str, job: &Value) -> Value {
    match format {
        AlertFormat::Json => json!({ "alert": summary, "job": job }),
        AlertFormat::Slack => json!({ "text": format!(":rotating_light: Portcullis: {summary}") }),
    }
}

/// Sends one alert to one sink: up to [`ATTEMPTS`] tries, a 2xx answer counts. Returns the
/// attempts made and the last error.
pub(super) async fn deliver(
    http: &reqwest::Client,
    sink: &AlertSink,
    summary: &str,
    job: &Value,
) -> (u32, Option<String>) {
    let payload = body(sink.format, summary, job).to_string();
    let mut wait = FIRST_WAIT;
    let mut last = None;
    for attempt in 1..=ATTEMPTS {
        let sent = http
            .post(sink.url.expose_secret())
            .header("content-type", "application/json")
            .body(payload.clone())
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => return (attempt, None),
            Ok(response) => last = Some(format!("answered {}", response.status())),
            // The error may carry the URL: scrubbed like everything the host writes.
            Err(e) => last = Some(crate::redact::scrubbed(e.without_url().to_string())),
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
    }
    (ATTEMPTS, last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_gets_text_and_json_gets_the_job() {
        let job = json!({ "id": "job-7" });
        assert_eq!(
            body(AlertFormat::Slack, "apply job job-7 failed", &job),
            json!({ "text": ":rotating_light: Portcullis: apply job job-7 failed" })
        );
        assert_eq!(
            body(AlertFormat::Json, "s", &job),
            json!({ "alert": "s", "job": { "id": "job-7" } })
        );
    }
}
