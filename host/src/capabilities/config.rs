//! `portcullis:connector/config`: the app's base URL and non-secret settings.

use crate::bindings::v0_1::config::Host;
use crate::sandbox::CallState;

impl Host for CallState {
    fn base_url(&mut self) -> wasmtime::Result<String> {
        self.enter_host_call()?;
        // Without the trailing slash `Url` adds, so plugins can append "/repos/..." as
        // they would to the documented base URL.
        Ok(self.app.base_url.as_str().trim_end_matches('/').to_owned())
    }

    fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        self.enter_host_call()?;
        Ok(self.app.settings.get(&key).cloned())
    }
}
