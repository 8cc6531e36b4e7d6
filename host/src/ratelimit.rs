//! Host-owned, per-application rate limiting.
//!
//! One [`AppLimiter`] per configured app instance, shared by every call of that app. It
//! combines two things:
//! - the operator's configured rates (`[apps.NAME] rate_limit = { per_hour = 5000 }`),
//!   one GCRA limiter (`governor`) per configured period; a request needs a token from each;
//! - the servers' own signals (`Retry-After`, GitHub/Okta `remaining: 0` + reset, Jira's
//!   ISO reset on a 429), which block the whole app until the server's deadline.
//!
//! [`HttpEgress`](crate::egress::HttpEgress) waits in [`AppLimiter::acquire`] before every
//! request that passed policy, and feeds every response to
//! [`AppLimiter::observe_response`]. Time is tokio's, so tests run on a paused clock.
//!
//! Several workers on one PostgreSQL state share each app's limit ([`SharedRate`],
//! implemented by `crate::queue::limits`): the configured rate then holds for the sum of
//! all workers, and a server's wait seen by one blocks every worker.
//!
//! Must never: let a request go before a server-supplied wait ends.

use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// Actions of one app in flight at once when the config does not say.
pub const DEFAULT_CONCURRENCY: u32 = 8;

/// The largest burst a per-minute or per-hour rate gets by default.
pub const DEFAULT_BURST_CAP: u32 = 100;

/// The longest wait a server signal can impose; longer values are clamped to it (a reset a
/// year away is more likely a bug than a real limit, and the operator sees it in the log).
pub const MAX_SERVER_WAIT: Duration = Duration::from_secs(24 * 60 * 60);

/// `[apps.NAME] rate_limit = { per_hour = 5000, burst = 100, concurrency = 10 }`. The
/// accepted range of each field is in `crate::ranges` (config validation checks it).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    pub per_second: Option<u32>,
    pub per_minute: Option<u32>,
    pub per_hour: Option<u32>,
    /// Requests that may go at once before the rate applies. Default: 1 for `per_second`,
    /// the per-period count capped at [`DEFAULT_BURST_CAP`] for `per_minute`/`per_hour`.
    pub burst: Option<u32>,
    /// Actions of this app in flight at once (the engine enforces it); default 8.
    pub concurrency: Option<u32>,
}

/// Counters for reports and logs.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LimiterStats {
    /// Calls to `acquire` that returned.
    pub acquired: u64,
    /// Total time spent waiting inside `acquire` (rate tokens and server blocks).
    pub waited_ms: u64,
    /// Server-supplied waits received (`block_until` calls).
    pub server_blocks: u64,
}

/// governor's clock, on tokio time: the paused test clock drives the rate limiters too.
#[derive(Debug, Clone, Copy, Default)]
struct TokioClock;

impl Clock for TokioClock {
    type Instant = Instant;

    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }
}

type Gcra = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<Instant>>;

/// One configured rate as GCRA parameters, for a limiter shared between processes: a
/// request may go when the bucket's theoretical arrival time is at most `tolerance` ahead
/// of now, and each request moves it `interval` on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateSpec {
    /// `per_second`, `per_minute` or `per_hour`.
    pub period: &'static str,
    /// The time one request uses up (the period divided by the configured count).
    pub interval: Duration,
    /// How far ahead requests may run: `interval` times (burst - 1).
    pub tolerance: Duration,
}

/// What the shared limiter's calls return: boxed, so the trait stays object safe.
pub type SharedFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An app's rate shared by every process working on the same state (PostgreSQL). When
/// an [`AppLimiter`] has one, it replaces the in-process GCRA: every request takes its
/// token from the shared bucket, and server-supplied waits are published to all.
pub trait SharedRate: Send + Sync + std::fmt::Debug {
    /// Takes one token from every rate of `app` at once, or none: `Duration::ZERO` when
    /// taken, otherwise how long to wait before asking again (a rate's next token or a
    /// server-supplied wait in force). Never fails open: an unreachable store is waited
    /// out.
    fn take<'a>(&'a self, app: &'a str, rates: &'a [RateSpec]) -> SharedFuture<'a, Duration>;
    /// A server said no requests to `app` for `wait`: every process honours it.
    fn block<'a>(&'a self, app: &'a str, wait: Duration) -> SharedFuture<'a, ()>;
}

/// The rate limiter of one app instance. `Send + Sync`; share it in an `Arc`.
pub struct AppLimiter {
    app: String,
    /// One per configured period, with its label for logs.
    limiters: Vec<(&'static str, Gcra)>,
    /// The same rates for a shared limiter.
    rates: Vec<RateSpec>,
    /// Set when several workers share the state: replaces `limiters`.
    shared: OnceLock<Arc<dyn SharedRate>>,
    concurrency: usize,
    blocked: Mutex<Option<Instant>>,
    acquired: AtomicU64,
    waited_ms: AtomicU64,
    server_blocks: AtomicU64,
}

impl std::fmt::Debug for AppLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppLimiter")
            .field("app", &self.app)
            .field(
                "rates",
                &self.limiters.iter().map(|(l, _)| *l).collect::<Vec<_>>(),
            )
            .field("concurrency", &self.concurrency)
            .field("blocked_until", &*self.blocked.lock())
            .finish()
    }
}

/// One configurable period: name, configured count, quota constructor, default burst cap.
type Period = (&'static str, Option<u32>, fn(NonZeroU32) -> Quota, u32);

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

impl AppLimiter {
    /// Zero values (refused by config validation) are treated as 1 rather than panicking.
    pub fn new(app: &str, config: &RateLimitConfig) -> AppLimiter {
        let nonzero = |n: u32| NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
        let periods: [Period; 3] = [
            ("per_second", config.per_second, Quota::per_second, 1),
            (
                "per_minute",
                config.per_minute,
                Quota::per_minute,
                DEFAULT_BURST_CAP,
            ),
            (
                "per_hour",
                config.per_hour,
                Quota::per_hour,
                DEFAULT_BURST_CAP,
            ),
        ];
        let mut rates = Vec::new();
        let limiters = periods
            .into_iter()
            .filter_map(|(label, count, quota, cap)| {
                let count = count?;
                let burst = config.burst.unwrap_or(count.min(cap));
                let quota = quota(nonzero(count)).allow_burst(nonzero(burst));
                let interval = quota.replenish_interval();
                rates.push(RateSpec {
                    period: label,
                    interval,
                    tolerance: interval.saturating_mul(nonzero(burst).get() - 1),
                });
                Some((label, RateLimiter::direct_with_clock(quota, TokioClock)))
            })
            .collect();
        AppLimiter {
            app: app.to_owned(),
            limiters,
            rates,
            shared: OnceLock::new(),
            concurrency: config.concurrency.unwrap_or(DEFAULT_CONCURRENCY).max(1) as usize,
            blocked: Mutex::new(None),
            acquired: AtomicU64::new(0),
            waited_ms: AtomicU64::new(0),
            server_blocks: AtomicU64::new(0),
        }
    }

    /// Actions of this app that may be in flight at once.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// Shares this app's rates with every process on the same state from now on. Set
    /// once, before the first request; a second call is ignored.
    pub fn share(&self, shared: Arc<dyn SharedRate>) {
        let _ = self.shared.set(shared);
    }

    /// The configured rates as GCRA parameters.
    pub fn rates(&self) -> &[RateSpec] {
        &self.rates
    }

    /// [`AppLimiter::acquire`] against the shared bucket.
    async fn acquire_shared(&self, shared: &dyn SharedRate) {
        loop {
            if let Some(until) = self.blocked_until() {
                tokio::time::sleep_until(tokio::time::Instant::from_std(until)).await;
                continue;
            }
            let wait = shared.take(&self.app, &self.rates).await;
            if wait.is_zero() {
                return;
            }
            tracing::trace!(app = %self.app, wait_ms = wait.as_millis() as u64, "waiting for a shared rate token");
            tokio::time::sleep(wait.max(Duration::from_millis(1))).await;
        }
    }

    /// Waits until no server-supplied wait is in force and a rate token is available.
    /// Never returns before a server-supplied wait ends: the block is re-checked after
    /// every wake-up, so a block that arrives meanwhile is honoured too.
    pub async fn acquire(&self) {
        let started = tokio::time::Instant::now();
        if let Some(shared) = self.shared.get() {
            self.acquire_shared(shared.as_ref()).await;
            self.count_acquired(started.elapsed());
            return;
        }
        // Tokens already taken from some periods while waiting for another are kept.
        let mut taken = vec![false; self.limiters.len()];
        loop {
            if let Some(until) = self.blocked_until() {
                tracing::debug!(app = %self.app, wait_ms = until.saturating_duration_since(now()).as_millis() as u64, "waiting for the server-supplied wait to end");
                tokio::time::sleep_until(tokio::time::Instant::from_std(until)).await;
                continue;
            }
            let mut wait = None;
            for ((label, limiter), taken) in self.limiters.iter().zip(taken.iter_mut()) {
                if *taken {
                    continue;
                }
                match limiter.check() {
                    Ok(()) => *taken = true,
                    Err(not_until) => {
                        let d = not_until.wait_time_from(TokioClock.now());
                        tracing::trace!(app = %self.app, rate = label, wait_ms = d.as_millis() as u64, "waiting for a rate token");
                        wait = Some(d);
                        break;
                    }
                }
            }
            match wait {
                // At least a millisecond, so a rounding-zero wait cannot spin.
                Some(d) => tokio::time::sleep(d.max(Duration::from_millis(1))).await,
                None => break,
            }
        }
        self.count_acquired(started.elapsed());
    }

    fn count_acquired(&self, waited: Duration) {
        crate::metrics::rate_waited(&self.app, waited);
        self.acquired.fetch_add(1, Ordering::Relaxed);
        self.waited_ms.fetch_add(
            u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// A server said "not before `until`" (Retry-After, reset headers, connector error).
    /// Keeps the later of the current and the new deadline. `reason` is for logs.
    pub fn block_until(&self, until: Instant, reason: &str) {
        self.server_blocks.fetch_add(1, Ordering::Relaxed);
        let mut blocked = self.blocked.lock();
        let later = blocked.is_none_or(|current| until > current);
        if later {
            *blocked = Some(until);
        }
        drop(blocked);
        let wait = until.saturating_duration_since(now());
        if let Some(shared) = self.shared.get()
            && !wait.is_zero()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            // Published in the background: this request already waits locally.
            let shared = Arc::clone(shared);
            let app = self.app.clone();
            runtime.spawn(async move { shared.block(&app, wait).await });
        }
        let wait_ms = wait.as_millis() as u64;
        if later {
            tracing::info!(app = %self.app, wait_ms, reason, "server-supplied wait: no requests to this app until it ends");
        } else {
            tracing::debug!(app = %self.app, wait_ms, reason, "server-supplied wait ends before the one in force; kept the later one");
        }
    }

    /// The end of the server-supplied wait in force, if one is.
    pub fn blocked_until(&self) -> Option<Instant> {
        let blocked = *self.blocked.lock();
        blocked.filter(|until| *until > now())
    }

    /// Parses a response's rate-limit signals (see [`server_wait`]) and blocks the app
    /// until the server's deadline.
    pub fn observe_response(&self, status: u16, headers: &[(String, String)]) {
        if let Some(wait) = server_wait(status, headers, SystemTime::now()) {
            let reason = format!("HTTP {status} rate-limit headers");
            self.block_until(now() + wait, &reason);
        }
    }

    pub fn stats(&self) -> LimiterStats {
        LimiterStats {
            acquired: self.acquired.load(Ordering::Relaxed),
            waited_ms: self.waited_ms.load(Ordering::Relaxed),
            server_blocks: self.server_blocks.load(Ordering::Relaxed),
        }
    }
}

/// Pure parser: how long from `now` no request may go, if the response says so.
///
/// - `Retry-After`: seconds or an HTTP-date, on any status;
/// - GitHub `x-ratelimit-remaining: 0` + `x-ratelimit-reset` and Okta
///   `x-rate-limit-remaining: 0` + `x-rate-limit-reset` (Unix seconds; an ISO-8601 reset is
///   accepted too): wait until the reset, even on a 2xx (the next call would fail);
/// - a 429 without a usable `Retry-After`: `x-ratelimit-reset` as ISO-8601 (Jira:
///   `2026-11-25T21:40Z`, read as the end of that minute; or with seconds and/or an
///   offset) or Unix seconds.
///
/// Several signals: the longest wait wins. Waits are clamped to [`MAX_SERVER_WAIT`]; a
/// deadline already past is no wait. Unparseable values are ignored (logged at debug).
pub fn server_wait(status: u16, headers: &[(String, String)], now: SystemTime) -> Option<Duration> {
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    };
    let retry_after = header("retry-after").and_then(|v| parse_retry_after(v, now));
    let mut wait = retry_after;
    for (remaining, reset) in [
        ("x-ratelimit-remaining", "x-ratelimit-reset"),
        ("x-rate-limit-remaining", "x-rate-limit-reset"),
    ] {
        let exhausted = header(remaining).is_some_and(|v| v.parse::<u64>().ok() == Some(0));
        if exhausted && let Some(d) = header(reset).and_then(|v| parse_reset(reset, v, now)) {
            wait = wait.max(Some(d));
        }
    }
    if status == 429
        && retry_after.is_none()
        && let Some(d) =
            header("x-ratelimit-reset").and_then(|v| parse_reset("x-ratelimit-reset", v, now))
    {
        wait = wait.max(Some(d));
    }
    let wait = wait.filter(|d| !d.is_zero())?;
    if wait > MAX_SERVER_WAIT {
        tracing::warn!(
            wait_s = wait.as_secs(),
            "a server asked for a wait longer than a day; waiting a day"
        );
        return Some(MAX_SERVER_WAIT);
    }
    Some(wait)
}

/// `Retry-After`: delay-seconds or an HTTP-date (RFC 9110 §10.2.3).
fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    // Some servers send fractional seconds; accept them.
    if let Ok(secs) = value.parse::<f64>()
        && let Ok(d) = Duration::try_from_secs_f64(secs)
    {
        return Some(d);
    }
    match httpdate::parse_http_date(value) {
        Ok(at) => Some(at.duration_since(now).unwrap_or_default()),
        Err(_) => {
            tracing::debug!(value, "ignoring an unparseable Retry-After");
            None
        }
    }
}

/// A reset header: Unix seconds (GitHub, Okta) or ISO-8601 (Jira).
fn parse_reset(name: &str, value: &str, now: SystemTime) -> Option<Duration> {
    let at = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        value
            .parse::<u64>()
            .ok()
            .and_then(|secs| SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs)))
    } else {
        parse_iso8601(value)
    };
    match at {
        Some(at) => Some(at.duration_since(now).unwrap_or_default()),
        None => {
            tracing::debug!(
                header = name,
                value,
                "ignoring an unparseable rate-limit reset"
            );
            None
        }
    }
}

/// ISO-8601 date-times as Atlassian writes them: minutes or seconds (with an optional
/// fraction), `Z` or a numeric offset.
///
/// Jira's documented form has minute precision (`2026-11-25T21:40Z`): the real reset lies
/// somewhere in that minute, so it is read as the minute's *end*. Reading it as the start
/// would let a request go up to 59 s before the server's window ends (and, within that
/// minute, not wait at all).
fn parse_iso8601(value: &str) -> Option<SystemTime> {
    use chrono::{DateTime, NaiveDateTime};
    // (format, minute precision)
    const NAIVE: &[(&str, bool)] = &[("%Y-%m-%dT%H:%M:%S%.f", false), ("%Y-%m-%dT%H:%M", true)];
    const OFFSET: &[(&str, bool)] = &[
        ("%Y-%m-%dT%H:%M:%S%.f%:z", false),
        ("%Y-%m-%dT%H:%M:%S%.f%z", false),
        ("%Y-%m-%dT%H:%M%:z", true),
        ("%Y-%m-%dT%H:%M%z", true),
    ];
    let (parsed, minute_precision) = if let Some(utc) = value.strip_suffix(['Z', 'z']) {
        NAIVE.iter().find_map(|(f, minutes)| {
            NaiveDateTime::parse_from_str(utc, f)
                .ok()
                .map(|t| (t.and_utc(), *minutes))
        })
    } else {
        OFFSET.iter().find_map(|(f, minutes)| {
            DateTime::parse_from_str(value, f)
                .ok()
                .map(|t| (t.to_utc(), *minutes))
        })
    }?;
    let reset = SystemTime::from(parsed);
    Some(if minute_precision {
        reset + Duration::from_secs(60)
    } else {
        reset
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// 2026-11-25T21:30:00Z.
    fn t0() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_642_200)
    }

    fn secs(n: u64) -> Option<Duration> {
        Some(Duration::from_secs(n))
    }

    #[test]
    fn retry_after_seconds_and_http_date() {
        let h = headers(&[("retry-after", "17")]);
        assert_eq!(server_wait(429, &h, t0()), secs(17));
        // Any status: a 503 or 403 with Retry-After blocks too.
        assert_eq!(server_wait(503, &h, t0()), secs(17));
        assert_eq!(server_wait(403, &h, t0()), secs(17));
        let h = headers(&[("retry-after", "Wed, 25 Nov 2026 21:31:30 GMT")]);
        assert_eq!(server_wait(429, &h, t0()), secs(90));
        // A date in the past or zero seconds: no wait.
        let h = headers(&[("retry-after", "Wed, 25 Nov 2026 21:00:00 GMT")]);
        assert_eq!(server_wait(429, &h, t0()), None);
        assert_eq!(
            server_wait(429, &headers(&[("retry-after", "0")]), t0()),
            None
        );
    }

    #[test]
    fn github_and_okta_exhausted_budgets_block_until_the_epoch_reset() {
        let reset = (1_795_642_200 + 600).to_string();
        for (remaining, reset_name) in [
            ("x-ratelimit-remaining", "x-ratelimit-reset"),
            ("x-rate-limit-remaining", "x-rate-limit-reset"),
        ] {
            // Proactively, even on a 200.
            let h = headers(&[(remaining, "0"), (reset_name, &reset)]);
            assert_eq!(server_wait(200, &h, t0()), secs(600), "{remaining}");
            assert_eq!(server_wait(403, &h, t0()), secs(600), "{remaining}");
            // Budget left: no wait.
            let h = headers(&[(remaining, "12"), (reset_name, &reset)]);
            assert_eq!(server_wait(200, &h, t0()), None, "{remaining}");
        }
        // Retry-After and a later reset: the later one wins.
        let h = headers(&[
            ("retry-after", "60"),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", &reset),
        ]);
        assert_eq!(server_wait(403, &h, t0()), secs(600));
    }

    #[test]
    fn jira_iso_reset_on_a_429_with_and_without_seconds_or_offset() {
        // Minute precision is the end of that minute: the reset is somewhere inside it.
        for (value, expected) in [
            ("2026-11-25T21:40Z", 660),
            ("2026-11-25T21:40:30Z", 630),
            ("2026-11-25T21:40:30.500Z", 630),
            ("2026-11-25T22:40+01:00", 660),
            ("2026-11-25T22:40:30+0100", 630),
            ("2026-11-25T21:40:30+00:00", 630),
        ] {
            let h = headers(&[("x-ratelimit-reset", value)]);
            let wait = server_wait(429, &h, t0()).map(|d| d.as_secs());
            assert_eq!(wait, Some(expected), "{value}");
            // Not a 429 and no exhausted budget: no wait.
            assert_eq!(server_wait(200, &h, t0()), None, "{value}");
        }
        // Jira's 429 also says remaining 0: blocks on that too.
        let h = headers(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "2026-11-25T21:40Z"),
        ]);
        assert_eq!(server_wait(429, &h, t0()), secs(660));
        // With a Retry-After, the 429 rule defers to it.
        let h = headers(&[
            ("retry-after", "5"),
            ("x-ratelimit-reset", "2026-11-25T21:40Z"),
        ]);
        assert_eq!(server_wait(429, &h, t0()), secs(5));
    }

    #[test]
    fn a_minute_precision_reset_is_waited_out_to_the_end_of_its_minute() {
        // 21:40:58, and Jira's window ends at some second of 21:40 it does not say: the
        // next request may only go at 21:41:00, never at once.
        let now = t0() + Duration::from_secs(10 * 60 + 58);
        let h = headers(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "2026-11-25T21:40Z"),
        ]);
        assert_eq!(server_wait(429, &h, now), secs(2));
        // A reset with seconds is taken as it is: past means no wait.
        let h = headers(&[("x-ratelimit-reset", "2026-11-25T21:40:30Z")]);
        assert_eq!(server_wait(429, &h, now), None);
    }

    #[test]
    fn garbage_is_ignored_and_huge_waits_are_clamped() {
        for h in [
            headers(&[("retry-after", "soon")]),
            headers(&[("retry-after", "-5")]),
            headers(&[("retry-after", "")]),
            headers(&[
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", "never"),
            ]),
            headers(&[
                ("x-rate-limit-remaining", "zero"),
                ("x-rate-limit-reset", "1"),
            ]),
            headers(&[("x-ratelimit-reset", "2026-13-45T99:99Z")]),
            headers(&[("x-ratelimit-remaining", "0")]),
            headers(&[]),
        ] {
            assert_eq!(server_wait(429, &h, t0()), None, "{h:?}");
        }
        let h = headers(&[("retry-after", "99999999999")]);
        assert_eq!(server_wait(429, &h, t0()), Some(MAX_SERVER_WAIT));
    }

    #[test]
    fn defaults_and_concurrency() {
        let limiter = AppLimiter::new("a", &RateLimitConfig::default());
        assert_eq!(limiter.concurrency(), 8);
        assert!(limiter.limiters.is_empty());
        let limiter = AppLimiter::new(
            "a",
            &RateLimitConfig {
                per_second: Some(5),
                per_hour: Some(5000),
                concurrency: Some(3),
                ..RateLimitConfig::default()
            },
        );
        assert_eq!(limiter.concurrency(), 3);
        assert_eq!(limiter.limiters.len(), 2);
    }

    fn tnow() -> tokio::time::Instant {
        tokio::time::Instant::now()
    }

    #[tokio::test(start_paused = true)]
    async fn no_configuration_means_no_waiting() {
        let limiter = AppLimiter::new("a", &RateLimitConfig::default());
        let start = tnow();
        for _ in 0..1000 {
            limiter.acquire().await;
        }
        assert_eq!(tnow(), start);
        assert_eq!(limiter.stats().acquired, 1000);
        assert_eq!(limiter.stats().waited_ms, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn per_second_with_burst_admits_the_burst_then_one_per_period() {
        let limiter = AppLimiter::new(
            "a",
            &RateLimitConfig {
                per_second: Some(10),
                burst: Some(3),
                ..RateLimitConfig::default()
            },
        );
        let start = tnow();
        for _ in 0..3 {
            limiter.acquire().await;
            assert_eq!(tnow(), start, "the burst goes at once");
        }
        for i in 1..=4u64 {
            limiter.acquire().await;
            let elapsed = tnow() - start;
            let expected = Duration::from_millis(100 * i);
            assert!(
                elapsed >= expected && elapsed <= expected + Duration::from_millis(2),
                "request {}: {elapsed:?}",
                i + 3
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn per_second_default_burst_is_one() {
        let limiter = AppLimiter::new(
            "a",
            &RateLimitConfig {
                per_second: Some(5),
                ..RateLimitConfig::default()
            },
        );
        let start = tnow();
        limiter.acquire().await;
        assert_eq!(tnow(), start);
        limiter.acquire().await;
        assert!(tnow() - start >= Duration::from_millis(200));
    }

    #[tokio::test(start_paused = true)]
    async fn configured_periods_combine() {
        // 10/s with a burst of 2, but only 3 a minute: the fourth waits for the minute rate.
        let limiter = AppLimiter::new(
            "a",
            &RateLimitConfig {
                per_second: Some(10),
                per_minute: Some(3),
                burst: Some(2),
                ..RateLimitConfig::default()
            },
        );
        let start = tnow();
        limiter.acquire().await;
        limiter.acquire().await;
        assert_eq!(tnow(), start);
        limiter.acquire().await;
        // per_minute(3) burst 2 replenishes one every 20 s.
        assert!(
            tnow() - start >= Duration::from_secs(20),
            "{:?}",
            tnow() - start
        );
    }

    #[tokio::test(start_paused = true)]
    async fn acquire_never_returns_before_a_block_ends_even_one_that_arrives_while_waiting() {
        let limiter = Arc::new(AppLimiter::new("a", &RateLimitConfig::default()));
        let start = tnow();
        limiter.block_until((start + Duration::from_secs(10)).into_std(), "test");
        assert!(limiter.blocked_until().is_some());
        let waiter = Arc::clone(&limiter);
        let task = tokio::spawn(async move {
            waiter.acquire().await;
            tnow()
        });
        // The waiter is asleep until 10 s; at 5 s a longer block arrives.
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!task.is_finished());
        limiter.block_until((start + Duration::from_secs(25)).into_std(), "longer");
        let done = task.await.expect("task");
        assert!(
            done >= start + Duration::from_secs(25),
            "{:?}",
            done - start
        );
        assert!(limiter.blocked_until().is_none());
        let stats = limiter.stats();
        assert_eq!(stats.server_blocks, 2);
        assert_eq!(stats.acquired, 1);
        assert!(stats.waited_ms >= 20_000, "{stats:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_block_arriving_during_a_rate_wait_is_honoured() {
        let limiter = Arc::new(AppLimiter::new(
            "a",
            &RateLimitConfig {
                per_second: Some(1),
                ..RateLimitConfig::default()
            },
        ));
        let start = tnow();
        limiter.acquire().await;
        let waiter = Arc::clone(&limiter);
        let task = tokio::spawn(async move {
            waiter.acquire().await;
            tnow()
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!task.is_finished());
        limiter.block_until((start + Duration::from_secs(3)).into_std(), "test");
        let done = task.await.expect("task");
        assert!(done >= start + Duration::from_secs(3), "{:?}", done - start);
    }

    #[tokio::test(start_paused = true)]
    async fn a_later_block_is_not_shortened_by_an_earlier_one() {
        let limiter = AppLimiter::new("a", &RateLimitConfig::default());
        let start = tnow();
        let late = (start + Duration::from_secs(30)).into_std();
        limiter.block_until(late, "late");
        limiter.block_until((start + Duration::from_secs(5)).into_std(), "early");
        assert_eq!(limiter.blocked_until(), Some(late));
        limiter.acquire().await;
        assert!(tnow() >= start + Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn observed_responses_block_the_app() {
        let limiter = AppLimiter::new("a", &RateLimitConfig::default());
        limiter.observe_response(200, &headers(&[("x-ratelimit-remaining", "4999")]));
        assert!(limiter.blocked_until().is_none());
        let start = tnow();
        limiter.observe_response(429, &headers(&[("retry-after", "7")]));
        assert!(limiter.blocked_until().is_some());
        limiter.acquire().await;
        assert!(tnow() - start >= Duration::from_secs(7));
        assert_eq!(limiter.stats().server_blocks, 1);
    }
}
