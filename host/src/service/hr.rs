//! HR events in: `POST /v1/hr-events`. A delivery is the HR events file format
//! (`{"events": [...]}`), signed by the HR system with a shared secret:
//!
//! ```text
//! X-Portcullis-Signature: t=1767225600,v1=<hex HMAC-SHA256(secret, "{t}.{raw body}")>
//! ```
//!
//! Order of checks, each refusal recorded nowhere but the audit trail: signature present
//! and well-formed, timestamp within `server.hr_webhook.tolerance_s` of now, HMAC equal
//! (constant time), body in the events format, every event about a person and apps
//! Portcullis knows and applicable to them. Only then are the events stored, before the
//! answer; a repeated event id is a replay, accepted once and ignored after.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit as _, Mac as _};
use secrecy::{ExposeSecret as _, SecretString};
use sha2::Sha256;

use crate::config::Config;
use crate::people::{Directory, HrEventKind, HrEvents, people_as_of};
use crate::state::{ReceivedHrEvent, StateStore};

/// The header a delivery's signature travels in.
pub const SIGNATURE_HEADER: &str = "x-portcullis-signature";

/// Why a delivery was refused; nothing of it was stored.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    /// 401: missing, malformed, stale or wrong signature.
    Signature(String),
    /// 422: the body is not events Portcullis can apply.
    Events(String),
    /// 500: state could not be read or written.
    State(String),
}

/// The signature of `body` at `timestamp`, as the header carries it.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// Checks `header` against `body`, `secret` and the clock.
pub(super) fn verify_signature(
    secret: &SecretString,
    tolerance_s: u64,
    header: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), Refusal> {
    let header = header.ok_or_else(|| {
        Refusal::Signature(format!(
            "no {SIGNATURE_HEADER} header; sign the raw body as t=UNIX_SECONDS,v1=HEX(HMAC-SHA256(secret, \"t.body\"))"
        ))
    })?;
    let (mut timestamp, mut signatures) = (None, Vec::new());
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", v)) => signatures.push(v),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or_else(|| {
        Refusal::Signature(format!(
            "{SIGNATURE_HEADER} has no t=UNIX_SECONDS timestamp"
        ))
    })?;
    let age = now.timestamp().saturating_sub(timestamp);
    if age.unsigned_abs() > tolerance_s {
        return Err(Refusal::Signature(format!(
            "the signature's timestamp is {}s {} now, outside server.hr_webhook.tolerance_s = {tolerance_s}; a replayed or delayed delivery is refused (check the sender's clock)",
            age.unsigned_abs(),
            if age >= 0 { "before" } else { "after" }
        )));
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes())
        .expect("HMAC takes any key");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let expected = mac.finalize().into_bytes();
    // Each candidate compared in constant time (a sender rotating secrets sends two).
    let valid = signatures.iter().any(|candidate| {
        hex::decode(candidate).is_ok_and(|given| {
            use subtle::ConstantTimeEq as _;
            given.len() == expected.len() && bool::from(given.as_slice().ct_eq(&expected))
        })
    });
    if !valid {
        return Err(Refusal::Signature(
            "the signature does not match the body: sign the exact bytes sent with the shared secret".into(),
        ));
    }
    Ok(())
}

/// Events of one delivery, checked, as they will be stored.
pub(super) struct Delivery {
    pub events: Vec<ReceivedHrEvent>,
    pub kinds: Vec<HrEventKind>,
    pub effective: Vec<DateTime<Utc>>,
}

/// Parses and checks a delivery against the config, the directory, the events already
/// known and the events file. Nothing is stored.
pub(super) fn check_delivery(
    config: &Config,
    store: &dyn StateStore,
    body: &[u8],
    source: &str,
    now: DateTime<Utc>,
) -> Result<Delivery, Refusal> {
    const ORIGIN: &str = "the delivered HR events";
    let text = std::str::from_utf8(body)
        .map_err(|_| Refusal::Events(format!("{ORIGIN} are not UTF-8 JSON")))?;
    let parsed = HrEvents::parse(text, ORIGIN).map_err(|e| Refusal::Events(e.to_string()))?;
    if parsed.events.is_empty() {
        return Err(Refusal::Events(format!(
            "{ORIGIN} contain no events; send {{\"events\": [...]}} with at least one"
        )));
    }
    let mut problems = Vec::new();
    for event in &parsed.events {
        for app in event.accounts.keys() {
            if !config.apps.contains_key(app) {
                problems.push(format!(
                    "event {}: app `{app}` is not configured (configured: {}); fix the account mapping or configure the app",
                    event.id,
                    config.apps.keys().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        }
    }
    // Does every event apply to the person as known, with the events already received?
    let directory = match &config.people.directory {
        Some(path) => Directory::load(path).map_err(|e| Refusal::State(e.to_string()))?,
        None => Directory::default(),
    };
    let mut all = match &config.people.events {
        Some(path) => HrEvents::load(path).map_err(|e| Refusal::State(e.to_string()))?,
        None => HrEvents::default(),
    };
    let received =
        crate::ops::received_events(store, &all).map_err(|e| Refusal::State(e.to_string()))?;
    let known: BTreeSet<String> = all
        .events
        .iter()
        .chain(&received)
        .map(|e| e.id.clone())
        .collect();
    all.events.extend(received);
    let fresh: Vec<_> = parsed
        .events
        .iter()
        .filter(|e| !known.contains(&e.id))
        .cloned()
        .collect();
    for event in &fresh {
        let introduced = directory.people.contains_key(&event.person)
            || all
                .events
                .iter()
                .chain(&fresh)
                .any(|e| e.person == event.person && e.kind == HrEventKind::Hire);
        if !introduced {
            problems.push(format!(
                "event {}: person {} is not in the directory and no hire event introduces them; send their hire first",
                event.id, event.person
            ));
        }
    }
    if problems.is_empty() && !fresh.is_empty() {
        all.events.extend(fresh);
        all.origin = ORIGIN.into();
        let latest = all
            .events
            .iter()
            .map(|e| e.effective)
            .max()
            .unwrap_or(now)
            .max(now);
        if let Err(e) = people_as_of(&directory, &all, latest) {
            problems.push(e.to_string());
        }
    }
    if !problems.is_empty() {
        return Err(Refusal::Events(problems.join("\n")));
    }
    // The stored form: each element of "events" as it came.
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| Refusal::Events(e.to_string()))?;
    let entries = value["events"].as_array().cloned().unwrap_or_default();
    let events = parsed
        .events
        .iter()
        .zip(entries)
        .map(|(event, entry)| ReceivedHrEvent {
            id: event.id.clone(),
            person: event.person.clone(),
            received_at: now,
            source: source.to_owned(),
            entry,
        })
        .collect();
    Ok(Delivery {
        events,
        kinds: parsed.events.iter().map(|e| e.kind).collect(),
        effective: parsed.events.iter().map(|e| e.effective).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> SecretString {
        SecretString::from("whsec-0123456789".to_owned())
    }

    #[test]
    fn a_signature_is_checked_for_presence_age_and_value() {
        let now = Utc::now();
        let body = br#"{"events":[]}"#;
        let header = sign("whsec-0123456789", now.timestamp(), body);
        assert_eq!(
            verify_signature(&secret(), 300, Some(&header), body, now),
            Ok(())
        );
        let refused = |header: Option<&str>, body: &[u8]| match verify_signature(
            &secret(),
            300,
            header,
            body,
            now,
        ) {
            Err(Refusal::Signature(why)) => why,
            other => panic!("{header:?}: {other:?}"),
        };
        assert!(refused(None, body).contains("no x-portcullis-signature header"));
        assert!(refused(Some("v1=00"), body).contains("no t=UNIX_SECONDS"));
        let old = sign("whsec-0123456789", now.timestamp() - 301, body);
        assert!(refused(Some(&old), body).contains("301s before now"));
        let wrong_key = sign("whsec-other-secret", now.timestamp(), body);
        assert!(refused(Some(&wrong_key), body).contains("does not match"));
        assert!(refused(Some(&header), br#"{"events":[1]}"#).contains("does not match"));
        assert!(
            refused(Some(&format!("t={},v1=zz", now.timestamp())), body).contains("does not match")
        );
    }
}
