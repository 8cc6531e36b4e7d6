//! `portcullis:connector/secrets`: whether a secret exists, and its value only where the
//! app's config grants `reveal`. Every reveal and every refusal is audited.

use crate::audit::AuditEvent;
use crate::bindings::v0_1::secrets::{Host, SecretError};
use crate::sandbox::CallState;
use crate::secrets::SecretRefusal;
use crate::untrusted::{Shown, bound, caps};

impl Host for CallState {
    fn is_configured(&mut self, name: String) -> wasmtime::Result<bool> {
        self.enter_host_call()?;
        Ok(self.app.secrets.is_configured(&name))
    }

    fn reveal(&mut self, name: String) -> wasmtime::Result<Result<String, SecretError>> {
        self.enter_host_call()?;
        // The name is the plugin's: bounded before it reaches the audit trail or a log.
        let name = bound(name, caps::ID_BYTES);
        let store = match self.app.secrets.load() {
            Ok(store) => store,
            Err(problem) => {
                let reason = problem.to_string();
                self.record(AuditEvent::SecretRefused {
                    name: name.clone(),
                    reason: reason.clone(),
                })?;
                return Ok(Err(SecretError::NotConfigured(reason)));
            }
        };
        match store.reveal(&name) {
            Ok(value) => {
                // Audit before the value reaches the guest; no audit, no secret.
                self.record(AuditEvent::SecretRevealed { name })?;
                Ok(Ok(value))
            }
            Err(refusal) => {
                let reason = refusal.to_string();
                self.record(AuditEvent::SecretRefused {
                    name: name.clone(),
                    reason: reason.clone(),
                })?;
                tracing::warn!(app = %self.app.name, secret = %Shown(&name), "{}", Shown(&reason));
                Ok(Err(match refusal {
                    SecretRefusal::NotConfigured(_) => SecretError::NotConfigured(reason),
                    SecretRefusal::NotRevealable(_) => SecretError::Denied(reason),
                }))
            }
        }
    }
}
