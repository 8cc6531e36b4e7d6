//! `portcullis:connector/secrets`: whether a secret exists, and its value only where the
//! app's config grants `reveal`. Every reveal and every refusal is audited.

use crate::audit::AuditEvent;
use crate::bindings::secrets::{Host, SecretError};
use crate::sandbox::CallState;
use crate::secrets::SecretRefusal;

impl Host for CallState {
    fn is_configured(&mut self, name: String) -> wasmtime::Result<bool> {
        self.enter_host_call()?;
        Ok(self.app.secrets.is_configured(&name))
    }

    fn reveal(&mut self, name: String) -> wasmtime::Result<Result<String, SecretError>> {
        self.enter_host_call()?;
        match self.app.secrets.reveal(&name) {
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
                tracing::warn!(app = %self.app.name, secret = %name, "{reason}");
                Ok(Err(match refusal {
                    SecretRefusal::NotConfigured(_) => SecretError::NotConfigured(reason),
                    SecretRefusal::NotRevealable(_) => SecretError::Denied(reason),
                }))
            }
        }
    }
}
