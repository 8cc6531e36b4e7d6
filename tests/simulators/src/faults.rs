//! Fault injection shared by every simulator: a test holds a [`Faults`] handle (cheap to
//! clone, shared with the server) and turns faults on and off while a run is going.
//!
//! Two layers:
//! - transport faults, applied by a middleware in front of the simulator's router (see
//!   [`crate::Server::start_with_faults`]): connection resets, slow responses, vendor-shaped
//!   5xx and rate-limit answers ([`FaultResponses`] phrases them), an enforced steady rate;
//! - semantic faults, applied by each simulator on its write paths: a write acknowledged
//!   but not applied and a write applied only after a lag, decided once per successful
//!   write by [`Faults::decide_write`] (each simulator then discards or defers the write
//!   in its own way).
//!
//! Order in which the middleware decides, for each request (one decision under one lock):
//! 1. the arrival is recorded ([`Faults::arrivals`]);
//! 2. a pending connection reset wins: the connection is closed, nothing else is consumed
//!    and the request never reaches the simulator;
//! 3. a pending slow response is consumed: whatever is answered below is delayed;
//! 4. a pending server error answers the vendor's 5xx;
//! 5. a pending rate-limit storm answers the vendor's rate-limit response (counted);
//! 6. with an enforced rate, a request beyond `per_second` *admitted* requests in the
//!    trailing second answers the rate-limit response with the time until a slot frees as
//!    its retry-after (counted); requests refused by any fault are not admitted and do not
//!    use the rate;
//! 7. otherwise the request goes to the simulator.
//!
//! A slow response runs the simulator first and then waits, so a write the client gave up
//! on (timeout) has still been applied, as on a real overloaded server.
//!
//! Times are `std::time::Instant` (wall clock, not tokio's paused clock).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::response::Response;
use parking_lot::Mutex;

/// The most arrivals kept; older ones are dropped first.
const ARRIVALS_CAPACITY: usize = 100_000;
/// The window of [`Faults::enforce_rate`].
const RATE_WINDOW: Duration = Duration::from_secs(1);

/// Faults a test injects into one simulator. Cheap to clone (`Arc` inside; clones share
/// the same faults); every counter means "the next N requests/writes". All methods take
/// `&self`. A fresh `Faults` injects nothing.
#[derive(Clone, Default, Debug)]
pub struct Faults {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default, Debug)]
struct Inner {
    dropped_writes: u32,
    write_lag: Option<Duration>,
    storm: u32,
    storm_retry_after: Option<Duration>,
    server_errors: u32,
    slow: u32,
    slow_delay: Duration,
    resets: u32,
    per_second: Option<u32>,
    /// Admitted requests in the trailing window, oldest first (with an enforced rate).
    admitted: VecDeque<Instant>,
    over_limit: u64,
    arrivals: VecDeque<Instant>,
}

/// What the middleware does with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Close the connection without a complete response.
    Reset,
    /// Answer (after `delay`, if any).
    Answer {
        delay: Option<Duration>,
        action: Action,
    },
}

/// What becomes of one write that would succeed ([`Faults::decide_write`]). Whatever
/// the fate, the write is answered at once exactly as a success would be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteFate {
    /// The write is applied now.
    Stand,
    /// The write is not applied at all ([`Faults::drop_writes`]).
    Drop,
    /// The write is not applied now; it is re-run against the state as it is `lag`
    /// later ([`Faults::lag_writes`]).
    Lag(Duration),
}

/// A write that has been answered and applies to a simulator's state `W` after `lag`
/// (a lagged-write fault). Kept by the state until the HTTP layer lets go of its lock and
/// [`schedule`]s it.
pub struct Later<W> {
    pub lag: Duration,
    pub apply: Box<dyn FnOnce(&mut W) + Send>,
}

impl<W> std::fmt::Debug for Later<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Later")
            .field("lag", &self.lag)
            .finish_non_exhaustive()
    }
}

impl<W> Later<W> {
    /// Carries out `fate` for a write that has just succeeded in `state` (its answer
    /// already built): dropped, `undo` runs now, so the answer says success and nothing
    /// changed; lagged, `undo` runs now and the returned `Later` re-runs `redo` after the
    /// lag; standing, nothing happens.
    pub fn after_write(
        state: &mut W,
        fate: WriteFate,
        undo: impl FnOnce(&mut W),
        redo: impl FnOnce(&mut W) + Send + 'static,
    ) -> Option<Later<W>> {
        match fate {
            WriteFate::Stand => None,
            WriteFate::Drop => {
                undo(state);
                None
            }
            WriteFate::Lag(lag) => {
                undo(state);
                Some(Later {
                    lag,
                    apply: Box::new(redo),
                })
            }
        }
    }
}

/// Applies lagged writes once their lag has passed, each on its own task.
pub fn schedule<W: Send + 'static>(shared: &Arc<Mutex<W>>, later: Vec<Later<W>>) {
    for Later { lag, apply } in later {
        let shared = Arc::clone(shared);
        tokio::spawn(async move {
            tokio::time::sleep(lag).await;
            apply(&mut shared.lock());
        });
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Pass,
    ServerError,
    RateLimited(Option<Duration>),
}

impl Faults {
    /// No faults.
    pub fn new() -> Faults {
        Faults::default()
    }

    /// The next `n` writes answer success but change nothing ("200 OK means I received
    /// it"). Only writes that would succeed are dropped; a write the simulator refuses
    /// answers its error and does not use up the count.
    pub fn drop_writes(&self, n: u32) {
        self.inner.lock().dropped_writes = n;
    }

    /// Writes answer at once but take effect only `lag` later (read-back lags), until
    /// [`Self::clear`]. A zero `lag` turns lagging off. The late write is re-run against the
    /// state as it is then, so it may end differently from what was answered.
    pub fn lag_writes(&self, lag: Duration) {
        self.inner.lock().write_lag = (!lag.is_zero()).then_some(lag);
    }

    /// The next `n` requests get the vendor's rate-limit answer; `retry_after` `None` omits
    /// `Retry-After` (the vendor's shape without a server-supplied wait).
    pub fn rate_limit_storm(&self, n: u32, retry_after: Option<Duration>) {
        let mut inner = self.inner.lock();
        inner.storm = n;
        inner.storm_retry_after = retry_after;
    }

    /// The next `n` requests get a vendor-shaped 5xx.
    pub fn server_errors(&self, n: u32) {
        self.inner.lock().server_errors = n;
    }

    /// The next `n` responses are delayed by `delay` (to exceed a client timeout).
    pub fn slow_responses(&self, n: u32, delay: Duration) {
        let mut inner = self.inner.lock();
        inner.slow = n;
        inner.slow_delay = delay;
    }

    /// The next `n` requests have their connection closed without a complete response
    /// (the client sees a connection error, never a status).
    pub fn reset_connections(&self, n: u32) {
        self.inner.lock().resets = n;
    }

    /// Enforce a steady rate: more than `per_second` requests in any 1 s window are
    /// answered with the vendor's rate-limit response (and counted). `0` refuses every
    /// request. Stays on until [`Self::clear`].
    pub fn enforce_rate(&self, per_second: u32) {
        let mut inner = self.inner.lock();
        inner.per_second = Some(per_second);
        inner.admitted.clear();
    }

    /// Requests answered with an injected or enforced rate-limit response so far (not
    /// reset by [`Self::clear`]).
    pub fn over_limit_responses(&self) -> u64 {
        self.inner.lock().over_limit
    }

    /// `std::time::Instant`s at which each request reached the simulator, oldest first (the
    /// newest 100 000), including requests answered by a fault; for "no call before a
    /// server wait ends" assertions. Not reset by [`Self::clear`].
    pub fn arrivals(&self) -> Vec<Instant> {
        self.inner.lock().arrivals.iter().copied().collect()
    }

    /// Turns every fault off (the run must then complete). Keeps the observations
    /// ([`Self::arrivals`], [`Self::over_limit_responses`]). Writes already lagging still
    /// land when their lag ends.
    pub fn clear(&self) {
        let mut inner = self.inner.lock();
        let over_limit = inner.over_limit;
        let arrivals = std::mem::take(&mut inner.arrivals);
        *inner = Inner {
            over_limit,
            arrivals,
            ..Inner::default()
        };
    }

    /// For simulator code, once per write that would succeed (a refused write must not
    /// call it): what becomes of the write. A pending dropped write wins over lagging and
    /// is used up ([`WriteFate::Drop`]); otherwise, while writes lag, [`WriteFate::Lag`]
    /// (uses nothing up); otherwise [`WriteFate::Stand`].
    #[doc(hidden)]
    pub fn decide_write(&self) -> WriteFate {
        let mut inner = self.inner.lock();
        if inner.dropped_writes > 0 {
            inner.dropped_writes -= 1;
            WriteFate::Drop
        } else if let Some(lag) = inner.write_lag {
            WriteFate::Lag(lag)
        } else {
            WriteFate::Stand
        }
    }

    /// Whether any semantic (write) fault is pending, so a simulator can skip the work of
    /// checking when none is.
    #[doc(hidden)]
    pub fn write_faults_pending(&self) -> bool {
        let inner = self.inner.lock();
        inner.dropped_writes > 0 || inner.write_lag.is_some()
    }

    /// Records an arrival at `now` and decides what the middleware does (module docs give
    /// the order).
    pub(crate) fn decide(&self, now: Instant) -> Verdict {
        let mut inner = self.inner.lock();
        if inner.arrivals.len() == ARRIVALS_CAPACITY {
            inner.arrivals.pop_front();
        }
        inner.arrivals.push_back(now);
        if inner.resets > 0 {
            inner.resets -= 1;
            return Verdict::Reset;
        }
        let delay = (inner.slow > 0).then(|| {
            inner.slow -= 1;
            inner.slow_delay
        });
        let action = if inner.server_errors > 0 {
            inner.server_errors -= 1;
            Action::ServerError
        } else if inner.storm > 0 {
            inner.storm -= 1;
            inner.over_limit += 1;
            Action::RateLimited(inner.storm_retry_after)
        } else if let Some(per_second) = inner.per_second {
            while inner
                .admitted
                .front()
                .is_some_and(|t| now.saturating_duration_since(*t) >= RATE_WINDOW)
            {
                inner.admitted.pop_front();
            }
            if inner.admitted.len() >= per_second as usize {
                inner.over_limit += 1;
                let wait = inner.admitted.front().map_or(RATE_WINDOW, |oldest| {
                    (*oldest + RATE_WINDOW).saturating_duration_since(now)
                });
                Action::RateLimited(Some(wait))
            } else {
                inner.admitted.push_back(now);
                Action::Pass
            }
        } else {
            Action::Pass
        };
        Verdict::Answer { delay, action }
    }
}

/// How a simulator phrases faults in its vendor's format.
pub trait FaultResponses: Send + Sync + 'static {
    /// The vendor's rate-limit answer; `retry_after` `None` means without a
    /// server-supplied wait.
    fn rate_limited(&self, retry_after: Option<Duration>) -> Response;
    /// The vendor's 5xx.
    fn server_error(&self) -> Response;
}

/// A `Retry-After` value in whole seconds, rounded up (a wait of 0.2 s is `1`), as vendors
/// send it.
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs();
    if wait.subsec_nanos() > 0 {
        secs + 1
    } else {
        secs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_counts() {
        let faults = Faults::new();
        let now = Instant::now();
        faults.reset_connections(1);
        faults.slow_responses(1, Duration::from_millis(5));
        faults.server_errors(1);
        faults.rate_limit_storm(1, None);
        assert_eq!(faults.decide(now), Verdict::Reset);
        assert_eq!(
            faults.decide(now),
            Verdict::Answer {
                delay: Some(Duration::from_millis(5)),
                action: Action::ServerError
            }
        );
        assert_eq!(
            faults.decide(now),
            Verdict::Answer {
                delay: None,
                action: Action::RateLimited(None)
            }
        );
        assert_eq!(
            faults.decide(now),
            Verdict::Answer {
                delay: None,
                action: Action::Pass
            }
        );
        assert_eq!(faults.over_limit_responses(), 1);
        assert_eq!(faults.arrivals().len(), 4);
    }

    #[test]
    fn enforced_rate_is_a_sliding_window_of_admitted_requests() {
        let faults = Faults::new();
        faults.enforce_rate(2);
        let t0 = Instant::now();
        let pass = Verdict::Answer {
            delay: None,
            action: Action::Pass,
        };
        assert_eq!(faults.decide(t0), pass);
        assert_eq!(faults.decide(t0 + Duration::from_millis(100)), pass);
        assert_eq!(
            faults.decide(t0 + Duration::from_millis(400)),
            Verdict::Answer {
                delay: None,
                action: Action::RateLimited(Some(Duration::from_millis(600)))
            }
        );
        assert_eq!(faults.decide(t0 + Duration::from_millis(1000)), pass);
        assert_eq!(faults.over_limit_responses(), 1);
        faults.clear();
        for _ in 0..10 {
            assert_eq!(faults.decide(t0 + Duration::from_millis(1001)), pass);
        }
        assert_eq!(faults.over_limit_responses(), 1);
    }

    #[test]
    fn writes() {
        let faults = Faults::new();
        assert!(!faults.write_faults_pending());
        assert_eq!(faults.decide_write(), WriteFate::Stand);
        faults.drop_writes(1);
        assert!(faults.write_faults_pending());
        assert_eq!(faults.decide_write(), WriteFate::Drop);
        assert!(!faults.write_faults_pending());
        assert_eq!(faults.decide_write(), WriteFate::Stand);
        faults.lag_writes(Duration::from_secs(1));
        assert_eq!(
            faults.decide_write(),
            WriteFate::Lag(Duration::from_secs(1))
        );
        faults.clear();
        assert_eq!(faults.decide_write(), WriteFate::Stand);
        assert_eq!(retry_after_secs(Duration::from_millis(200)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
    }

    #[test]
    fn dropped_writes_count_down_and_win_over_lagging_which_lasts() {
        let lag = Duration::from_millis(250);
        let faults = Faults::new();
        faults.drop_writes(2);
        faults.lag_writes(lag);
        // Dropping wins while its count lasts, one per write...
        assert_eq!(faults.decide_write(), WriteFate::Drop);
        assert_eq!(faults.decide_write(), WriteFate::Drop);
        // ...then lagging, which is not counted: every write lags until cleared.
        for _ in 0..3 {
            assert_eq!(faults.decide_write(), WriteFate::Lag(lag));
        }
        assert!(faults.write_faults_pending());
        // A zero lag turns lagging off; writes then stand, and keep standing.
        faults.lag_writes(Duration::ZERO);
        assert!(!faults.write_faults_pending());
        for _ in 0..3 {
            assert_eq!(faults.decide_write(), WriteFate::Stand);
        }
        // A new count starts over; `drop_writes` sets the count, it does not add to it.
        faults.drop_writes(3);
        faults.drop_writes(1);
        assert_eq!(faults.decide_write(), WriteFate::Drop);
        assert_eq!(faults.decide_write(), WriteFate::Stand);
        // Deciding writes touches no request fault or observation.
        assert!(faults.arrivals().is_empty());
        assert_eq!(faults.over_limit_responses(), 0);
    }
}
