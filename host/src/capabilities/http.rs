//! `portcullis:connector/http`: converts the plugin's request, hands it to the app's
//! [`Egress`](crate::egress::Egress) policy seam, and records the request (sent or refused)
//! in the call's report and the audit trail. Bodies and secrets are never recorded, and a
//! response reaches the plugin with the secrets it may not reveal scrubbed out.

use std::sync::Arc;
use std::time::Instant;

use crate::audit::{AuditEvent, redact_url};
use crate::bindings::v0_1::http::{self as wit, Host};
use crate::egress::{Auth, EgressError, InboundResponse, OutboundRequest, parse_url};
use crate::redact;
use crate::sandbox::{CallState, HttpCall};
use crate::untrusted::{Shown, bound, caps};

impl Host for CallState {
    async fn send(
        &mut self,
        request: wit::Request,
    ) -> wasmtime::Result<Result<wit::Response, wit::HttpError>> {
        self.enter_host_call()?;
        let method = method(request.method);
        // Parsed once: the audit shows it redacted, egress checks and sends it.
        let parsed = parse_url(&request.url);
        // The URL is the plugin's: it may carry a secret (with reveal granted) or be huge.
        let shown_url = match &parsed {
            Ok(url) => bound(redact::scrubbed(redact_url(url)), caps::MESSAGE_BYTES),
            Err(_) => format!(
                "<unparsable URL: {}>",
                redact::scrub(&request.url.chars().take(80).collect::<String>())
            ),
        };
        let egress = Arc::clone(&self.app.egress);
        let started = Instant::now();
        let result = match parsed {
            Ok(url) => {
                let outbound = OutboundRequest {
                    method: method.clone(),
                    url,
                    headers: request.headers,
                    body: request.body,
                    auth: request.auth.map(auth),
                };
                egress.send(outbound).await
            }
            Err(refused) => Err(refused),
        };
        let elapsed = started.elapsed();
        self.meter.host_time += elapsed;

        let call = HttpCall {
            method: method.to_string(),
            url: shown_url,
            status: result.as_ref().ok().map(|r| r.status),
            latency_ms: elapsed.as_secs_f64() * 1e3,
            refused: result
                .as_ref()
                .err()
                .map(|e| bound(redact::scrubbed(e.to_string()), caps::MESSAGE_BYTES)),
        };
        if let Some(reason) = &call.refused {
            tracing::warn!(app = %self.app.name, call = %self.call_id, url = %Shown(&call.url), "outbound request failed: {}", Shown(reason));
        }
        // The request already happened; an audit failure still stops the call so the
        // plugin cannot continue unrecorded.
        self.record(AuditEvent::Http {
            method: call.method.clone(),
            url: call.url.clone(),
            status: call.status,
            latency_ms: call.latency_ms,
            refused: call.refused.clone(),
        })?;
        self.meter.http.push(call);

        Ok(match result {
            Ok(response) => Ok(self.hide_secrets(response)),
            Err(e) => Err(match e {
                EgressError::Denied(m) => wit::HttpError::Denied(m),
                EgressError::InvalidRequest(m) => wit::HttpError::InvalidRequest(m),
                EgressError::Timeout(m) => wit::HttpError::Timeout(m),
                EgressError::Connection(m) => wit::HttpError::Connection(m),
                EgressError::TooLarge(m) => wit::HttpError::TooLarge(m),
                EgressError::MissingSecret(m) => wit::HttpError::MissingSecret(m),
            }),
        })
    }
}

impl CallState {
    /// The response as the plugin may see it: every secret of its app that it may not
    /// reveal is scrubbed from the headers and the body, in every form it can take (an
    /// origin that reflects request headers must not hand back the injected token).
    fn hide_secrets(&self, response: InboundResponse) -> wit::Response {
        let Ok(secrets) = self.app.secrets.load() else {
            // Nothing was loaded, so nothing was injected.
            return wit::Response {
                status: response.status,
                headers: response.headers,
                body: response.body,
            };
        };
        let hidden = secrets.hidden_from_plugin();
        let headers = response
            .headers
            .into_iter()
            .map(|(name, value)| (name, hidden.scrub(&value).into_owned()))
            .collect();
        let body = match hidden.scrub_bytes(&response.body) {
            std::borrow::Cow::Borrowed(_) => response.body,
            std::borrow::Cow::Owned(clean) => clean,
        };
        wit::Response {
            status: response.status,
            headers,
            body,
        }
    }
}

fn method(method: wit::Method) -> http::Method {
    match method {
        wit::Method::Get => http::Method::GET,
        wit::Method::Head => http::Method::HEAD,
        wit::Method::Post => http::Method::POST,
        wit::Method::Put => http::Method::PUT,
        wit::Method::Patch => http::Method::PATCH,
        wit::Method::Delete => http::Method::DELETE,
    }
}

fn auth(auth: wit::Auth) -> Auth {
    match auth {
        wit::Auth::Bearer(secret) => Auth::Bearer { secret },
        wit::Auth::Basic(b) => Auth::Basic {
            username_secret: b.username_secret,
            password_secret: b.password_secret,
        },
        wit::Auth::Header(h) => Auth::Header {
            name: h.name,
            prefix: h.prefix,
            secret: h.secret,
        },
        wit::Auth::AwsSigv4(s) => Auth::AwsSigV4 {
            access_key_id_secret: s.access_key_id_secret,
            secret_access_key_secret: s.secret_access_key_secret,
            session_token_secret: s.session_token_secret,
            region: s.region,
            service: s.service,
        },
    }
}
