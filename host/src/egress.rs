//! Outbound HTTP for plugins: the one seam through which a plugin reaches the network.
//!
//! [`Egress`] is the policy hook (in the style of wasmtime-wasi-http's `send_request`
//! hook): the host's HTTP capability hands it every request a plugin makes, and tests or
//! embedders can swap it. [`HttpEgress`] is the real one. In order, it:
//! 1. refuses any URL whose scheme, host or port differs from the app's base URL;
//! 2. refuses guest-set `Authorization`, `Proxy-Authorization`, `Host`, `Cookie` and
//!    framing headers (credentials come only from `auth`, framing only from the host);
//! 3. resolves DNS itself and refuses loopback, private, link-local/metadata and reserved
//!    addresses unless the app's `network` policy allows that class (IP-literal URLs get
//!    the same check, since they bypass the resolver);
//! 4. waits for the app's [`AppLimiter`] (configured rates, server-supplied waits), then
//!    injects the secret named by `auth`, or signs the final request with AWS SigV4;
//! 5. sends with connect and total timeouts, never following redirects (a 3xx goes back to
//!    the plugin) and never using ambient proxy settings;
//! 6. hands the response status and headers to the limiter (Retry-After, reset headers);
//! 7. buffers at most `http_max_response_bytes` of the body.
//!
//! Must never: put a secret into an error message, or follow a redirect.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use url::{Host, Url};

use crate::config::NetworkPolicy;
use crate::limits::SandboxLimits;
use crate::ratelimit::AppLimiter;
use crate::secrets::{AppSecrets, SecretStore};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A request as the plugin asked for it, before policy.
#[derive(Debug, Clone)]
pub struct OutboundRequest {
    pub method: http::Method,
    /// Parsed once by the http capability, which also shows it (redacted) in the audit.
    pub url: Url,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    pub auth: Option<Auth>,
}

/// Which secret(s) the host injects, and how. Fields name secrets, never hold them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    Bearer {
        secret: String,
    },
    Basic {
        username_secret: String,
        password_secret: String,
    },
    Header {
        name: String,
        prefix: String,
        secret: String,
    },
    AwsSigV4 {
        access_key_id_secret: String,
        secret_access_key_secret: String,
        session_token_secret: Option<String>,
        region: String,
        service: String,
    },
}

#[derive(Debug, Clone)]
pub struct InboundResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Why a request got no response. `Denied` is a policy decision; the rest are failures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressError {
    #[error("denied: {0}")]
    Denied(String),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("connection failed: {0}")]
    Connection(String),
    #[error("response too large: {0}")]
    TooLarge(String),
    #[error("missing secret: {0}")]
    MissingSecret(String),
}

/// The policy seam for outbound HTTP. One instance serves one application.
pub trait Egress: Send + Sync + 'static {
    fn send(&self, request: OutboundRequest)
    -> BoxFuture<'_, Result<InboundResponse, EgressError>>;
}

/// Headers a plugin may not set: credentials come from `auth`, framing from the host.
const FORBIDDEN_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "host",
    "cookie",
    "content-length",
    "transfer-encoding",
    "connection",
    "te",
    "upgrade",
    "x-amz-date",
    "x-amz-security-token",
];

/// The longest server-supplied wait a request waits out inside a call; longer ones fail the
/// request at once (see `send_checked`).
const MAX_WAIT_IN_CALL: Duration = Duration::from_secs(5);

/// The real outbound HTTP path for one application.
pub struct HttpEgress {
    app: String,
    base_url: Url,
    network: NetworkPolicy,
    secrets: Arc<AppSecrets>,
    max_response_bytes: u64,
    client: reqwest::Client,
    limiter: Arc<AppLimiter>,
}

impl HttpEgress {
    pub fn new(
        app: &str,
        base_url: Url,
        network: NetworkPolicy,
        secrets: Arc<AppSecrets>,
        limits: &SandboxLimits,
        limiter: Arc<AppLimiter>,
    ) -> Result<HttpEgress, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(Duration::from_millis(limits.http_connect_timeout_ms))
            .timeout(Duration::from_millis(limits.http_timeout_ms))
            .dns_resolver(Arc::new(PolicyResolver {
                app: Arc::from(app),
                network,
            }))
            .user_agent(concat!("portcullis/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(HttpEgress {
            app: app.to_owned(),
            base_url,
            network,
            secrets,
            max_response_bytes: limits.http_max_response_bytes,
            client,
            limiter,
        })
    }

    async fn send_checked(&self, request: OutboundRequest) -> Result<InboundResponse, EgressError> {
        check_origin(&self.app, &self.base_url, &request.url)?;
        let url = request.url;
        if let Some(host) = url.host() {
            let literal = match host {
                Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
                Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
                Host::Domain(_) => None,
            };
            if let Some(ip) = literal {
                check_address(&self.app, self.network, ip)?;
            }
        }
        let mut headers = guest_headers(&request.headers)?;
        // A long server-supplied wait is not sat out inside a sandboxed call (it would spend
        // the call's wall-clock budget): the request is held back, and the engine, which
        // checks the limiter before each attempt, waits outside the sandbox.
        if let Some(until) = self.limiter.blocked_until() {
            let wait = until.saturating_duration_since(std::time::Instant::now());
            if wait > MAX_WAIT_IN_CALL {
                return Err(EgressError::Timeout(format!(
                    "held back by the host: {} asked for no requests for another {} s (rate limit); try again after the wait",
                    self.app,
                    wait.as_secs_f64().ceil()
                )));
            }
        }
        // Policy passed: wait for the app's rate limit and any short server-supplied wait.
        // Before auth injection, so a SigV4 signature carries the time the request goes.
        self.limiter.acquire().await;
        if let Some(auth) = &request.auth {
            let target = SigningTarget {
                method: &request.method,
                url: &url,
                body: request.body.as_deref(),
            };
            let secrets = self
                .secrets
                .load()
                .map_err(|problem| EgressError::MissingSecret(problem.to_string()))?;
            inject_auth(secrets, auth, &mut headers, &target)?;
        }
        let mut builder = self
            .client
            .request(request.method.clone(), url.clone())
            .headers(headers);
        if let Some(body) = request.body {
            builder = builder.body(body);
        }
        let mut response = builder.send().await.map_err(|e| classify_send_error(&e))?;
        let status = response.status().as_u16();
        let headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        self.limiter.observe_response(status, &headers);
        let cap = self.max_response_bytes;
        if response.content_length().is_some_and(|len| len > cap) {
            return Err(too_large(cap));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| classify_send_error(&e))?
        {
            if (body.len() + chunk.len()) as u64 > cap {
                return Err(too_large(cap));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(InboundResponse {
            status,
            headers,
            body,
        })
    }
}

impl Egress for HttpEgress {
    fn send(
        &self,
        request: OutboundRequest,
    ) -> BoxFuture<'_, Result<InboundResponse, EgressError>> {
        Box::pin(self.send_checked(request))
    }
}

fn too_large(cap: u64) -> EgressError {
    EgressError::TooLarge(format!(
        "the response body exceeds the {cap}-byte cap; page the request or raise limits.http_max_response_bytes"
    ))
}

/// Parses a plugin's URL; the error is the plugin's to fix.
pub fn parse_url(requested: &str) -> Result<Url, EgressError> {
    Url::parse(requested).map_err(|e| {
        EgressError::InvalidRequest(format!("`{requested}` is not an absolute URL: {e}"))
    })
}

/// Refuses a URL that leaves the app's origin or carries credentials.
pub fn check_origin(app: &str, base: &Url, url: &Url) -> Result<(), EgressError> {
    let same_origin = url.scheme() == base.scheme()
        && url.host_str() == base.host_str()
        && url.port_or_known_default() == base.port_or_known_default();
    if !same_origin {
        return Err(EgressError::Denied(format!(
            "{} is outside the origin of app `{app}` ({}); a plugin may only reach its app's base_url",
            origin_of(url),
            origin_of(base)
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(EgressError::Denied(
            "URLs may not carry credentials; use the request's `auth`".into(),
        ));
    }
    Ok(())
}

fn origin_of(url: &Url) -> String {
    url.origin().ascii_serialization()
}

fn guest_headers(pairs: &[(String, String)]) -> Result<HeaderMap, EgressError> {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            EgressError::InvalidRequest(format!("`{name}` is not a valid header name"))
        })?;
        if FORBIDDEN_HEADERS.contains(&name.as_str()) {
            return Err(EgressError::Denied(format!(
                "plugins may not set the `{name}` header; credentials are injected by the host from the request's `auth`, framing headers are set by the host"
            )));
        }
        let value = HeaderValue::from_str(value).map_err(|_| {
            EgressError::InvalidRequest(format!(
                "the value of header `{name}` contains invalid characters"
            ))
        })?;
        headers.append(name, value);
    }
    Ok(headers)
}

/// What a request signature covers besides the headers: the final method, URL and body.
struct SigningTarget<'a> {
    method: &'a http::Method,
    url: &'a Url,
    body: Option<&'a [u8]>,
}

fn inject_auth(
    secrets: &SecretStore,
    auth: &Auth,
    headers: &mut HeaderMap,
    target: &SigningTarget<'_>,
) -> Result<(), EgressError> {
    let secret = |name: &str| {
        secrets.expose_for_injection(name).map_err(|_| {
            EgressError::MissingSecret(format!(
                "secret `{name}` is not configured for this app; add it under the app's `secrets`"
            ))
        })
    };
    let sensitive = |text: String| {
        let mut value = HeaderValue::from_str(&text).map_err(|_| {
            EgressError::InvalidRequest(
                "a configured secret contains characters not allowed in a header".into(),
            )
        })?;
        value.set_sensitive(true);
        Ok::<_, EgressError>(value)
    };
    match auth {
        Auth::Bearer { secret: name } => {
            let value = sensitive(format!("Bearer {}", secret(name)?))?;
            headers.insert(http::header::AUTHORIZATION, value);
        }
        Auth::Basic {
            username_secret,
            password_secret,
        } => {
            let raw = format!("{}:{}", secret(username_secret)?, secret(password_secret)?);
            let encoded = base64::engine::general_purpose::STANDARD.encode(raw);
            headers.insert(
                http::header::AUTHORIZATION,
                sensitive(format!("Basic {encoded}"))?,
            );
        }
        Auth::Header {
            name,
            prefix,
            secret: secret_name,
        } => {
            let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                EgressError::InvalidRequest(format!("`{name}` is not a valid header name"))
            })?;
            if matches!(
                header.as_str(),
                "host" | "cookie" | "content-length" | "transfer-encoding"
            ) {
                return Err(EgressError::Denied(format!(
                    "secrets may not be injected into `{header}`"
                )));
            }
            let value = sensitive(format!("{prefix}{}", secret(secret_name)?))?;
            headers.insert(header, value);
        }
        Auth::AwsSigV4 {
            access_key_id_secret,
            secret_access_key_secret,
            session_token_secret,
            region,
            service,
        } => {
            let credentials = aws_credential_types::Credentials::new(
                secret(access_key_id_secret)?,
                secret(secret_access_key_secret)?,
                session_token_secret
                    .as_deref()
                    .map(secret)
                    .transpose()?
                    .map(str::to_owned),
                None,
                "portcullis-secret-store",
            );
            let scope = SigV4Scope { region, service };
            sign_sigv4(&credentials, scope, target, headers, SystemTime::now())?;
        }
    }
    Ok(())
}

/// Where a SigV4 signature is valid: the record's region and service.
#[derive(Clone, Copy)]
struct SigV4Scope<'a> {
    region: &'a str,
    service: &'a str,
}

/// Signs the final request (method, URL, every header the plugin set plus `host`, body)
/// with AWS Signature Version 4 and adds `authorization`, `x-amz-date` and, with a session
/// token, `x-amz-security-token`. The plugin cannot set those itself (`FORBIDDEN_HEADERS`).
fn sign_sigv4(
    credentials: &aws_credential_types::Credentials,
    scope: SigV4Scope<'_>,
    target: &SigningTarget<'_>,
    headers: &mut HeaderMap,
    time: SystemTime,
) -> Result<(), EgressError> {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};

    // The Host header the HTTP client will send: the port only when it is not the
    // scheme's default (`Url::port` is None then), as hyper does.
    let host = match (target.url.host_str(), target.url.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_owned(),
        (None, _) => {
            return Err(EgressError::InvalidRequest(format!(
                "`{}` has no host to sign",
                target.url
            )));
        }
    };
    let mut signed: Vec<(&str, &str)> = vec![("host", host.as_str())];
    for (name, value) in headers.iter() {
        let value = value.to_str().map_err(|_| {
            EgressError::InvalidRequest(format!(
                "the value of header `{name}` is not visible ASCII and cannot be signed"
            ))
        })?;
        signed.push((name.as_str(), value));
    }
    let identity: aws_smithy_runtime_api::client::identity::Identity = credentials.clone().into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(scope.region)
        .name(scope.service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| EgressError::InvalidRequest(format!("cannot sign with SigV4: {e}")))?
        .into();
    let signable = SignableRequest::new(
        target.method.as_str(),
        target.url.as_str(),
        signed.into_iter(),
        SignableBody::Bytes(target.body.unwrap_or_default()),
    )
    .and_then(|request| sign(request, &params))
    .map_err(|e| EgressError::InvalidRequest(format!("cannot sign with SigV4: {e}")))?;
    let (instructions, _signature) = signable.into_parts();
    let (added, _query) = instructions.into_parts();
    for header in added {
        let name = HeaderName::from_bytes(header.name().as_bytes()).map_err(|_| {
            EgressError::InvalidRequest(format!("`{}` is not a valid header name", header.name()))
        })?;
        let mut value = HeaderValue::from_str(header.value()).map_err(|_| {
            EgressError::InvalidRequest(format!(
                "the SigV4 `{name}` header has characters not allowed in a header"
            ))
        })?;
        value.set_sensitive(header.sensitive() || name == http::header::AUTHORIZATION);
        headers.insert(name, value);
    }
    Ok(())
}

/// Why an address may not be reached, if it may not.
pub fn check_address(app: &str, network: NetworkPolicy, ip: IpAddr) -> Result<(), EgressError> {
    let class = classify(ip);
    let allowed = match class {
        AddressClass::Public => true,
        AddressClass::Loopback => network.allow_loopback,
        AddressClass::Private => network.allow_private,
        AddressClass::LinkLocal => network.allow_link_local,
        AddressClass::Reserved => false,
    };
    if allowed {
        Ok(())
    } else {
        Err(EgressError::Denied(refusal(app, ip, class)))
    }
}

fn refusal(app: &str, ip: IpAddr, class: AddressClass) -> String {
    let fix = match class {
        AddressClass::Loopback => {
            format!("set apps.{app}.network.allow_loopback = true if this is intended")
        }
        AddressClass::Private => {
            format!("set apps.{app}.network.allow_private = true if this is intended")
        }
        AddressClass::LinkLocal => format!(
            "link-local addresses include cloud metadata services; set apps.{app}.network.allow_link_local = true only if you are sure"
        ),
        AddressClass::Reserved | AddressClass::Public => {
            "this address range is never reachable".to_owned()
        }
    };
    format!("{ip} is a {} address; {fix}", class.describe())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    Public,
    Loopback,
    /// RFC 1918, CGNAT (100.64/10), IPv6 unique-local.
    Private,
    /// 169.254/16 and fe80::/10, where cloud metadata services live.
    LinkLocal,
    /// Unspecified, broadcast, multicast, documentation and other non-routable ranges.
    Reserved,
}

impl AddressClass {
    fn describe(self) -> &'static str {
        match self {
            AddressClass::Public => "public",
            AddressClass::Loopback => "loopback",
            AddressClass::Private => "private-network",
            AddressClass::LinkLocal => "link-local (cloud metadata)",
            AddressClass::Reserved => "reserved",
        }
    }
}

pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => classify_v4(v4),
            None => classify_v6(v6),
        },
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        AddressClass::Loopback
    } else if ip.is_private() || (a == 100 && (64..128).contains(&b)) {
        AddressClass::Private
    } else if ip.is_link_local() {
        AddressClass::LinkLocal
    } else if ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || a >= 240
        || (a == 192 && b == 0)
        || (a == 198 && (18..20).contains(&b))
    {
        AddressClass::Reserved
    } else {
        AddressClass::Public
    }
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    let first = ip.segments()[0];
    if ip.is_loopback() {
        AddressClass::Loopback
    } else if ip.is_unspecified()
        || ip.is_multicast()
        || first == 0x2001 && ip.segments()[1] == 0xdb8
    {
        AddressClass::Reserved
    } else if first & 0xffc0 == 0xfe80 {
        AddressClass::LinkLocal
    } else if first & 0xfe00 == 0xfc00 {
        AddressClass::Private
    } else if first == 0x0064 && ip.segments()[1] == 0xff9b {
        // NAT64 embeds an IPv4 address: judge the address it leads to.
        let [.., c, d] = ip.segments();
        classify_v4(Ipv4Addr::new(
            (c >> 8) as u8,
            c as u8,
            (d >> 8) as u8,
            d as u8,
        ))
    } else {
        AddressClass::Public
    }
}

/// DNS resolution done by the host, filtered through the app's network policy, so a
/// hostname cannot smuggle a request to an internal address.
struct PolicyResolver {
    app: Arc<str>,
    network: NetworkPolicy,
}

/// Carried through reqwest's error chain so the plugin sees the policy reason.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct AddressRefused(String);

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let network = self.network;
        let app = Arc::clone(&self.app);
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refusals = Vec::new();
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|addr| match check_address(&app, network, addr.ip()) {
                    Ok(()) => true,
                    Err(e) => {
                        refusals.push(e.to_string());
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                let why = refusals
                    .first()
                    .cloned()
                    .unwrap_or_else(|| "no addresses".into());
                let err: Box<dyn std::error::Error + Send + Sync> = Box::new(AddressRefused(
                    format!("{host} resolves only to refused addresses: {why}"),
                ));
                return Err(err);
            }
            let addrs: reqwest::dns::Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

fn classify_send_error(e: &reqwest::Error) -> EgressError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(refused) = err.downcast_ref::<AddressRefused>() {
            return EgressError::Denied(refused.0.clone());
        }
        source = err.source();
    }
    // reqwest's Display can include the URL; it never includes headers, so no secrets.
    let detail = error_chain(e);
    if e.is_timeout() {
        EgressError::Timeout(detail)
    } else if e.is_builder() {
        EgressError::InvalidRequest(detail)
    } else {
        EgressError::Connection(detail)
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(err) = source {
        text.push_str(": ");
        text.push_str(&err.to_string());
        source = err.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url::parse("https://api.github.com").expect("url")
    }

    #[test]
    fn other_origins_are_denied_with_both_origins_named() {
        let err = check_origin(
            "gh",
            &base(),
            &parse_url("https://evil.example.com/x").expect("absolute"),
        )
        .expect_err("denied");
        let text = err.to_string();
        assert!(text.contains("https://evil.example.com"), "{text}");
        assert!(text.contains("https://api.github.com"), "{text}");
        assert!(
            check_origin(
                "gh",
                &base(),
                &parse_url("http://api.github.com/x").expect("absolute")
            )
            .is_err()
        );
        assert!(
            check_origin(
                "gh",
                &base(),
                &parse_url("https://api.github.com:8443/x").expect("absolute")
            )
            .is_err()
        );
        assert!(
            check_origin(
                "gh",
                &base(),
                &parse_url("https://api.github.com.evil.com/").expect("absolute")
            )
            .is_err()
        );
        assert!(
            check_origin(
                "gh",
                &base(),
                &parse_url("https://API.GITHUB.COM:443/repos").expect("absolute")
            )
            .is_ok()
        );
    }

    #[test]
    fn address_classes() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert_eq!(classify(ip("127.0.0.1")), AddressClass::Loopback);
        assert_eq!(classify(ip("::1")), AddressClass::Loopback);
        assert_eq!(classify(ip("10.1.2.3")), AddressClass::Private);
        assert_eq!(classify(ip("172.20.0.1")), AddressClass::Private);
        assert_eq!(classify(ip("100.100.100.200")), AddressClass::Private);
        assert_eq!(classify(ip("fd00:ec2::254")), AddressClass::Private);
        assert_eq!(classify(ip("169.254.169.254")), AddressClass::LinkLocal);
        assert_eq!(
            classify(ip("::ffff:169.254.169.254")),
            AddressClass::LinkLocal
        );
        assert_eq!(classify(ip("64:ff9b::a9fe:a9fe")), AddressClass::LinkLocal);
        assert_eq!(classify(ip("0.0.0.0")), AddressClass::Reserved);
        assert_eq!(classify(ip("140.82.112.6")), AddressClass::Public);
    }

    #[test]
    fn policy_allows_only_what_the_operator_opted_into() {
        let ip: IpAddr = "127.0.0.1".parse().expect("ip");
        let err = check_address("gh", NetworkPolicy::default(), ip).expect_err("loopback refused");
        assert!(
            err.to_string().contains("apps.gh.network.allow_loopback"),
            "{err}"
        );
        let loopback = NetworkPolicy {
            allow_loopback: true,
            ..NetworkPolicy::default()
        };
        assert!(check_address("gh", loopback, ip).is_ok());
        let metadata: IpAddr = "169.254.169.254".parse().expect("ip");
        assert!(check_address("gh", loopback, metadata).is_err());
    }

    #[test]
    fn credential_and_framing_headers_are_refused() {
        for name in [
            "Authorization",
            "host",
            "Cookie",
            "Proxy-Authorization",
            "Content-Length",
        ] {
            let err = guest_headers(&[(name.to_owned(), "x".to_owned())]).expect_err(name);
            assert!(matches!(err, EgressError::Denied(_)), "{name}: {err}");
        }
        assert!(guest_headers(&[("accept".into(), "application/json".into())]).is_ok());
    }

    #[test]
    fn bearer_auth_is_injected_as_a_sensitive_header() {
        let mut sources = std::collections::BTreeMap::new();
        sources.insert(
            "token".to_owned(),
            crate::secrets::SecretSource::Value("t0k".into()),
        );
        let store = SecretStore::load(&sources, &[]).expect("load");
        let url = base();
        let target = SigningTarget {
            method: &http::Method::GET,
            url: &url,
            body: None,
        };
        let mut headers = HeaderMap::new();
        inject_auth(
            &store,
            &Auth::Bearer {
                secret: "token".into(),
            },
            &mut headers,
            &target,
        )
        .expect("inject");
        let value = &headers[http::header::AUTHORIZATION];
        assert_eq!(value, "Bearer t0k");
        assert!(value.is_sensitive());
        let missing = inject_auth(
            &store,
            &Auth::Bearer {
                secret: "nope".into(),
            },
            &mut headers,
            &target,
        )
        .expect_err("missing secret");
        assert!(matches!(missing, EgressError::MissingSecret(_)));
    }

    fn store(pairs: &[(&str, &str)]) -> SecretStore {
        let sources = pairs
            .iter()
            .map(|(name, value)| {
                (
                    (*name).to_owned(),
                    crate::secrets::SecretSource::Value((*value).into()),
                )
            })
            .collect();
        SecretStore::load(&sources, &[]).expect("load")
    }

    fn sigv4(session_token_secret: Option<&str>) -> Auth {
        Auth::AwsSigV4 {
            access_key_id_secret: "access-key-id".into(),
            secret_access_key_secret: "secret-access-key".into(),
            session_token_secret: session_token_secret.map(str::to_owned),
            region: "us-east-1".into(),
            service: "iam".into(),
        }
    }

    #[test]
    fn sigv4_signs_the_final_request_with_the_app_secrets() {
        let store = store(&[
            ("access-key-id", "AKID"),
            (
                "secret-access-key",
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            ),
            ("session-token", "T0KEN"),
        ]);
        let url = Url::parse("https://iam.amazonaws.com/").expect("url");
        let body = b"Action=GetUser&Version=2010-05-08".as_slice();
        let target = SigningTarget {
            method: &http::Method::POST,
            url: &url,
            body: Some(body),
        };
        let mut headers = guest_headers(&[(
            "content-type".into(),
            "application/x-www-form-urlencoded; charset=utf-8".into(),
        )])
        .expect("headers");
        inject_auth(&store, &sigv4(None), &mut headers, &target).expect("signs");

        let date = headers["x-amz-date"].to_str().expect("ascii").to_owned();
        assert_eq!(date.len(), "20260102T030405Z".len(), "{date}");
        let authorization = &headers[http::header::AUTHORIZATION];
        assert!(authorization.is_sensitive());
        let text = authorization.to_str().expect("ascii");
        let expected = format!(
            "AWS4-HMAC-SHA256 Credential=AKID/{}/us-east-1/iam/aws4_request, ",
            &date[..8]
        );
        assert!(text.starts_with(&expected), "{text}");
        assert!(
            text.contains("SignedHeaders=content-type;host;x-amz-date,"),
            "{text}"
        );
        assert!(!text.contains("EXAMPLEKEY"), "{text}");
        assert!(!headers.contains_key("x-amz-security-token"));

        // With a session token the token header is added and signed.
        let mut headers = HeaderMap::new();
        inject_auth(&store, &sigv4(Some("session-token")), &mut headers, &target).expect("signs");
        assert_eq!(headers["x-amz-security-token"], "T0KEN");
        assert!(headers["x-amz-security-token"].is_sensitive());
    }

    #[test]
    fn sigv4_signature_depends_on_the_body_and_is_deterministic() {
        let credentials = aws_credential_types::Credentials::new(
            "AKID",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            None,
            None,
            "test",
        );
        let url = Url::parse("http://127.0.0.1:4566/").expect("url");
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_323_045);
        let signature = |body: &[u8]| {
            let mut headers = HeaderMap::new();
            let target = SigningTarget {
                method: &http::Method::POST,
                url: &url,
                body: Some(body),
            };
            let scope = SigV4Scope {
                region: "us-east-1",
                service: "iam",
            };
            sign_sigv4(&credentials, scope, &target, &mut headers, time).expect("signs");
            headers[http::header::AUTHORIZATION]
                .to_str()
                .expect("ascii")
                .to_owned()
        };
        let a = signature(b"Action=GetUser");
        assert_eq!(a, signature(b"Action=GetUser"));
        assert_ne!(a, signature(b"Action=ListUsers"));
        assert!(
            a.starts_with("AWS4-HMAC-SHA256 Credential=AKID/20260102/us-east-1/iam/aws4_request"),
            "{a}"
        );
    }

    #[test]
    fn sigv4_with_a_missing_secret_is_missing_secret() {
        let store = store(&[("access-key-id", "AKID")]);
        let url = base();
        let target = SigningTarget {
            method: &http::Method::GET,
            url: &url,
            body: None,
        };
        let err = inject_auth(&store, &sigv4(None), &mut HeaderMap::new(), &target)
            .expect_err("missing secret");
        assert!(
            matches!(&err, EgressError::MissingSecret(text) if text.contains("secret-access-key")),
            "{err}"
        );
        let store = store_with_keys();
        let err = inject_auth(
            &store,
            &sigv4(Some("session-token")),
            &mut HeaderMap::new(),
            &target,
        )
        .expect_err("missing token");
        assert!(matches!(err, EgressError::MissingSecret(_)), "{err}");
    }

    fn store_with_keys() -> SecretStore {
        store(&[("access-key-id", "AKID"), ("secret-access-key", "SECRET")])
    }

    #[test]
    fn plugins_cannot_set_sigv4_headers_themselves() {
        for name in ["x-amz-date", "X-Amz-Security-Token"] {
            let err = guest_headers(&[(name.to_owned(), "x".to_owned())]).expect_err(name);
            assert!(matches!(err, EgressError::Denied(_)), "{name}: {err}");
        }
    }
}
