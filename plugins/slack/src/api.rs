//! Slack Web API calls: `GET|POST <base>/<method>` with the `token` secret as bearer,
//! Slack's `{"ok": false, "error": "<code>"}` envelope (always HTTP 200), and the one
//! mapping from Slack's error codes to what the host should do next.
//!
//! Must never: treat an HTTP 200 as success without reading `ok`, or drop Slack's error
//! code from a message (operators search Slack's docs for it).

use portcullis_sdk::http::{Request, Response};
use portcullis_sdk::{Error, Result, config};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// An `ok: false` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub method: &'static str,
    pub code: String,
    /// `missing_scope` only: the scope the method needed and those the token has.
    pub needed: Option<String>,
    pub provided: Option<String>,
}

impl From<Refusal> for Error {
    fn from(r: Refusal) -> Self {
        classify(&r)
    }
}

/// What a method answered: its fields, or Slack's refusal.
pub type Answer = std::result::Result<Value, Refusal>;

/// `GET <method>?<args>` (Slack's read methods).
pub fn get(method: &'static str, args: &[(&str, &str)]) -> Result<Answer> {
    let mut request = Request::get(config::url(&format!("/{method}")));
    for (key, value) in args {
        request = request.query(key, value);
    }
    send(method, request)
}

/// `POST <method>` with a JSON body. Slack wants the charset spelled out, or it answers
/// with a `missing_charset` warning.
pub fn post(method: &'static str, body: &Value) -> Result<Answer> {
    let request = Request::post(config::url(&format!("/{method}")))
        .header("content-type", "application/json; charset=utf-8")
        .body(body.to_string());
    send(method, request)
}

/// Like [`get`], with a refusal turned into its [`Error`].
pub fn get_ok(method: &'static str, args: &[(&str, &str)]) -> Result<Value> {
    Ok(get(method, args)??)
}

/// Decodes a successful answer's fields.
pub fn decode<T: DeserializeOwned>(method: &str, value: Value) -> Result<T> {
    serde_json::from_value(value).map_err(|e| {
        Error::transient(format!(
            "Slack {method} answered ok with an unexpected shape ({e})"
        ))
    })
}

/// `POST <method>` with no arguments, also returning the token's scopes as Slack
/// reports them in `x-oauth-scopes`.
pub fn post_for_scopes(method: &'static str) -> Result<(Answer, Option<String>)> {
    let response = Request::post(config::url(&format!("/{method}")))
        .bearer("token")
        .send()?;
    let scopes = response.header("x-oauth-scopes").map(str::to_owned);
    Ok((envelope(method, response)?, scopes))
}

fn send(method: &'static str, request: Request) -> Result<Answer> {
    let response = request.bearer("token").send()?;
    envelope(method, response)
}

/// Reads Slack's envelope. Rate limiting is the one HTTP-level error (429 with
/// `Retry-After`, mapped by the SDK); anything else not 2xx is mapped the REST way.
pub fn envelope(method: &'static str, response: Response) -> Result<Answer> {
    let response = response.error_for_status()?;
    let value: Value = response.json()?;
    if value.get("ok").and_then(Value::as_bool) == Some(true) {
        return Ok(Ok(value));
    }
    let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
    Ok(Err(Refusal {
        method,
        code: text("error").unwrap_or_else(|| "unknown_error".into()),
        needed: text("needed"),
        provided: text("provided"),
    }))
}

/// The error a refusal stands for, quoting Slack's code and saying what to do.
pub fn classify(r: &Refusal) -> Error {
    let code = r.code.as_str();
    let text = format!("Slack {} answered `{code}`", r.method);
    match code {
        "missing_scope" => Error::unauthorized(format!(
            "{text}: the token lacks the scope `{}` (it has: {}); add the scope to the Slack app and reinstall it",
            r.needed.as_deref().unwrap_or("?"),
            r.provided.as_deref().unwrap_or("none reported"),
        )),
        "invalid_auth"
        | "not_authed"
        | "account_inactive"
        | "token_revoked"
        | "token_expired"
        | "no_permission"
        | "not_allowed_token_type"
        | "ekm_access_denied"
        | "access_denied"
        | "team_access_not_granted" => Error::unauthorized(format!(
            "{text}; the bot token is missing, wrong, revoked or not allowed this; check the `token` secret (xoxb-…)"
        )),
        "ratelimited" => Error::rate_limited(None, text),
        "internal_error" | "fatal_error" | "service_unavailable" | "request_timeout" => {
            Error::transient(format!("{text}; a passing Slack failure"))
        }
        "no_such_subteam" => Error::not_found(format!("{text}: no such user group")),
        "channel_not_found" => Error::not_found(format!(
            "{text}: no such channel, or a private one the bot is not in (invite the bot first)"
        )),
        c if c.ends_with("_not_found") => Error::not_found(text),
        _ => Error::invalid_request(match hint(code) {
            Some(hint) => format!("{text}: {hint}"),
            None => text,
        }),
    }
}

/// What to do about refusals that need a person.
fn hint(code: &str) -> Option<&'static str> {
    Some(match code {
        "not_in_channel" => {
            "the bot is not a member of the channel; invite it once (`/invite @bot`) so it can manage members"
        }
        "is_archived" => "the channel is archived; unarchive it or drop the entitlement",
        "cant_invite_self" | "cant_kick_self" => "the subject is the connector's own bot user",
        "cant_kick_from_general" => "nobody can be removed from the workspace's #general",
        "restricted_action" => {
            "a workspace preference stops the bot from doing this; an admin must allow it"
        }
        "invalid_users" | "invalid_user" => {
            "Slack refuses these users in a user group (bots, guests and deactivated users cannot be members)"
        }
        "no_users_provided" => {
            "Slack cannot empty a user group; disable it with usergroups.disable instead"
        }
        "permission_denied" => {
            "the workspace lets only some people manage user groups; allow the bot in Settings > Permissions > User Groups"
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(code: &str) -> Refusal {
        Refusal {
            method: "conversations.invite",
            code: code.into(),
            needed: None,
            provided: None,
        }
    }

    #[test]
    fn codes_map_to_what_the_host_should_do() {
        for code in [
            "invalid_auth",
            "not_authed",
            "account_inactive",
            "token_revoked",
        ] {
            assert!(
                matches!(classify(&refusal(code)), Error::Unauthorized(_)),
                "{code}"
            );
        }
        for code in [
            "channel_not_found",
            "user_not_found",
            "users_not_found",
            "no_such_subteam",
        ] {
            assert!(
                matches!(classify(&refusal(code)), Error::NotFound(_)),
                "{code}"
            );
        }
        for code in [
            "internal_error",
            "fatal_error",
            "service_unavailable",
            "request_timeout",
        ] {
            assert!(
                matches!(classify(&refusal(code)), Error::Transient(_)),
                "{code}"
            );
        }
        assert!(matches!(
            classify(&refusal("ratelimited")),
            Error::RateLimited {
                retry_after_ms: None,
                ..
            }
        ));
        for code in [
            "is_archived",
            "not_in_channel",
            "cant_invite_self",
            "something_new",
        ] {
            let e = classify(&refusal(code));
            assert!(
                matches!(&e, Error::InvalidRequest(m) if m.contains(code)),
                "{e:?}"
            );
        }
    }

    #[test]
    fn missing_scope_names_the_scope_needed_and_held() {
        let e = classify(&Refusal {
            needed: Some("channels:manage".into()),
            provided: Some("channels:read,groups:read".into()),
            ..refusal("missing_scope")
        });
        assert!(
            matches!(&e, Error::Unauthorized(m) if m.contains("`missing_scope`") && m.contains("`channels:manage`") && m.contains("channels:read,groups:read")),
            "{e:?}"
        );
    }

    #[test]
    fn envelope_reads_ok_false_from_a_200() {
        let response = Response::from_parts(
            200,
            Vec::new(),
            r#"{"ok":false,"error":"already_in_channel","errors":[{"user":"U1","ok":false,"error":"already_in_channel"}]}"#,
        );
        let answer = envelope("conversations.invite", response);
        assert_eq!(
            answer.map(|a| a.err().map(|r| r.code)),
            Ok(Some("already_in_channel".to_owned()))
        );
    }

    #[test]
    fn a_429_is_rate_limited_with_the_wait_in_ms() {
        let response = Response::from_parts(
            429,
            vec![("retry-after".into(), "30".into())],
            r#"{"ok":false,"error":"ratelimited"}"#,
        );
        assert!(matches!(
            envelope("conversations.invite", response),
            Err(Error::RateLimited {
                retry_after_ms: Some(30_000),
                ..
            })
        ));
    }
}
