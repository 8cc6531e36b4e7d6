//! Contract 0.2.0's host interfaces. They are 0.1.0's unchanged (0.2.0 only added guest
//! exports), so each delegates to the 0.1.0 implementation, converting the generated
//! types on the way in and out: one implementation of every policy, whatever version a
//! plugin was built for.

use crate::bindings::{v0_1, v0_2};
use crate::sandbox::CallState;

impl v0_2::types::Host for CallState {}

impl v0_2::config::Host for CallState {
    fn base_url(&mut self) -> wasmtime::Result<String> {
        v0_1::config::Host::base_url(self)
    }

    fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        v0_1::config::Host::get(self, key)
    }
}

impl v0_2::log::Host for CallState {
    fn log(
        &mut self,
        level: v0_2::log::Level,
        message: String,
        fields: Vec<(String, String)>,
    ) -> wasmtime::Result<()> {
        use v0_1::log::Level as L1;
        use v0_2::log::Level as L2;
        let level = match level {
            L2::Trace => L1::Trace,
            L2::Debug => L1::Debug,
            L2::Info => L1::Info,
            L2::Warn => L1::Warn,
            L2::Error => L1::Error,
        };
        v0_1::log::Host::log(self, level, message, fields)
    }
}

impl v0_2::secrets::Host for CallState {
    fn is_configured(&mut self, name: String) -> wasmtime::Result<bool> {
        v0_1::secrets::Host::is_configured(self, name)
    }

    fn reveal(
        &mut self,
        name: String,
    ) -> wasmtime::Result<Result<String, v0_2::secrets::SecretError>> {
        use v0_1::secrets::SecretError as E1;
        use v0_2::secrets::SecretError as E2;
        Ok(
            v0_1::secrets::Host::reveal(self, name)?.map_err(|error| match error {
                E1::NotConfigured(m) => E2::NotConfigured(m),
                E1::Denied(m) => E2::Denied(m),
            }),
        )
    }
}

impl v0_2::http::Host for CallState {
    async fn send(
        &mut self,
        request: v0_2::http::Request,
    ) -> wasmtime::Result<Result<v0_2::http::Response, v0_2::http::HttpError>> {
        use v0_1::http as h1;
        use v0_2::http as h2;
        let method = match request.method {
            h2::Method::Get => h1::Method::Get,
            h2::Method::Head => h1::Method::Head,
            h2::Method::Post => h1::Method::Post,
            h2::Method::Put => h1::Method::Put,
            h2::Method::Patch => h1::Method::Patch,
            h2::Method::Delete => h1::Method::Delete,
        };
        let auth = request.auth.map(|auth| match auth {
            h2::Auth::Bearer(secret) => h1::Auth::Bearer(secret),
            h2::Auth::Basic(b) => h1::Auth::Basic(h1::BasicAuth {
                username_secret: b.username_secret,
                password_secret: b.password_secret,
            }),
            h2::Auth::Header(h) => h1::Auth::Header(h1::HeaderAuth {
                name: h.name,
                prefix: h.prefix,
                secret: h.secret,
            }),
            h2::Auth::AwsSigv4(s) => h1::Auth::AwsSigv4(h1::Sigv4Auth {
                access_key_id_secret: s.access_key_id_secret,
                secret_access_key_secret: s.secret_access_key_secret,
                session_token_secret: s.session_token_secret,
                region: s.region,
                service: s.service,
            }),
        });
        let request = h1::Request {
            method,
            url: request.url,
            headers: request.headers,
            body: request.body,
            auth,
        };
        let answered = h1::Host::send(self, request).await?;
        Ok(match answered {
            Ok(response) => Ok(h2::Response {
                status: response.status,
                headers: response.headers,
                body: response.body,
            }),
            Err(error) => Err(match error {
                h1::HttpError::Denied(m) => h2::HttpError::Denied(m),
                h1::HttpError::InvalidRequest(m) => h2::HttpError::InvalidRequest(m),
                h1::HttpError::Timeout(m) => h2::HttpError::Timeout(m),
                h1::HttpError::Connection(m) => h2::HttpError::Connection(m),
                h1::HttpError::TooLarge(m) => h2::HttpError::TooLarge(m),
                h1::HttpError::MissingSecret(m) => h2::HttpError::MissingSecret(m),
            }),
        })
    }
}
