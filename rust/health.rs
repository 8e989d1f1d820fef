//! Passive health of one channel, in the style of Envoy's outlier detection: consecutive
//! failures eject a channel for a growing back-off, a 429 with `Retry-After` ejects it for
//! exactly that long, and a health factor in (0, 1] lets scoring demote a channel before
//! (or instead of) ejecting it. The share of a model's channels that may be ejected at once
//! is decided by the caller, which sees all of them ([`ejection_limit`]).

use std::time::{Duration, Instant};

/// Outlier-detection knobs for one model's channels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthPolicy {
    /// Consecutive failures that eject a channel.
    pub consecutive_failures: u32,
    /// First ejection length; the n-th ejection in a row lasts n times this.
    pub base_ejection: Duration,
    /// Cap of the back-off (a `Retry-After` may exceed it, up to [`MAX_RETRY_AFTER`]).
    pub max_ejection: Duration,
    /// Share of the model's channels that may be ejected at once; never all of them.
    pub max_ejected_fraction: f64,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        Self {
            consecutive_failures: 3,
            base_ejection: Duration::from_secs(10),
            max_ejection: Duration::from_secs(300),
            max_ejected_fraction: 0.5,
        }
    }
}

/// How one upstream attempt ended, as far as the channel's health is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    ConnectError,
    Timeout,
    ServerError(u16),
    RateLimited {
        retry_after: Option<Duration>,
    },
    /// Upstream 4xx other than 429. 401/403/404 mean the channel itself is misconfigured
    /// (key, permission, model name) and count as failures; the rest are the request's fault.
    ClientError(u16),
    /// The client went away before the answer ended: nothing is known about the channel.
    Cancelled,
}

/// Longest `Retry-After` honoured: a provider asking for more is treated as asking for this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Floor of the health factor: a demoted channel keeps a trickle of traffic so that it can
/// prove itself again, which is also how a refused ejection degrades.
pub const MIN_FACTOR: f64 = 1.0 / 64.0;

/// An ejection the channel asks for; the caller grants it ([`ChannelHealth::eject`]) or,
/// when too many of the model's channels are out already, refuses it
/// ([`ChannelHealth::penalize`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EjectRequest {
    pub duration: Duration,
    /// Counts towards the growing back-off (consecutive failures), unlike a `Retry-After`.
    pub backoff: bool,
}

/// What an outcome says about the channel.
enum Verdict {
    Good,
    Bad,
    Neutral,
    RetryAfter(Duration),
}

impl Outcome {
    fn verdict(self) -> Verdict {
        match self {
            Self::Success => Verdict::Good,
            Self::ConnectError
            | Self::Timeout
            | Self::ServerError(_)
            | Self::RateLimited { retry_after: None }
            | Self::ClientError(401 | 403 | 404 | 429) => Verdict::Bad,
            Self::RateLimited {
                retry_after: Some(after),
            } => Verdict::RetryAfter(after),
            Self::ClientError(_) | Self::Cancelled => Verdict::Neutral,
        }
    }
}

/// Health state of one channel.
#[derive(Debug, Clone, Default)]
pub struct ChannelHealth {
    consecutive_failures: u32,
    /// Back-off ejections so far, halved per `max_ejection` of clean behaviour.
    ejections: u32,
    /// End of the latest failure or ejection: the clean period is measured from here.
    last_bad: Option<Instant>,
    ejected_until: Option<Instant>,
    /// An ejection the fraction cap refused: the channel stays in rotation at [`MIN_FACTOR`].
    penalized_until: Option<Instant>,
}

impl ChannelHealth {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records an attempt's outcome and returns the ejection it calls for, if any.
    ///
    /// The consecutive counter survives an ejection: the first attempt after the window is a
    /// half-open probe that re-ejects on failure and fully restores the channel on success.
    pub fn record(
        &mut self,
        outcome: Outcome,
        now: Instant,
        policy: &HealthPolicy,
    ) -> Option<EjectRequest> {
        let retry_after = match outcome.verdict() {
            Verdict::Neutral => return None,
            Verdict::Good => {
                self.consecutive_failures = 0;
                self.penalized_until = None;
                return None;
            }
            Verdict::Bad => None,
            Verdict::RetryAfter(after) => Some(after),
        };
        self.decay_ejections(now, policy);
        self.last_bad = Some(self.last_bad.map_or(now, |t| t.max(now)));
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        if let Some(after) = retry_after {
            return Some(EjectRequest {
                duration: after.min(MAX_RETRY_AFTER),
                backoff: false,
            });
        }
        if self.consecutive_failures < policy.consecutive_failures.max(1) || self.is_ejected(now) {
            return None;
        }
        let duration = policy
            .base_ejection
            .saturating_mul(self.ejections.saturating_add(1))
            .min(policy.max_ejection);
        Some(EjectRequest {
            duration,
            backoff: true,
        })
    }

    /// Grants an ejection. An ejection never shortens one already running.
    pub fn eject(&mut self, now: Instant, request: EjectRequest) {
        let until = now + request.duration;
        self.ejected_until = Some(self.ejected_until.map_or(until, |t| t.max(until)));
        self.last_bad = Some(self.last_bad.map_or(until, |t| t.max(until)));
        self.penalized_until = None;
        if request.backoff {
            self.ejections = self.ejections.saturating_add(1);
        }
    }

    /// Refuses an ejection (fraction cap): the channel keeps serving at the minimum factor.
    pub fn penalize(&mut self, now: Instant, request: EjectRequest) {
        self.penalized_until = Some(now + request.duration);
    }

    /// End of the running ejection, `None` when the channel is in rotation.
    pub fn ejected_until(&self, now: Instant) -> Option<Instant> {
        self.ejected_until.filter(|&t| t > now)
    }

    pub fn is_ejected(&self, now: Instant) -> bool {
        self.ejected_until(now).is_some()
    }

    /// Scoring multiplier in [`MIN_FACTOR`], 1]: halves per consecutive failure, so a single
    /// transient error costs little and a channel on the verge of ejection gets little traffic.
    pub fn factor(&self, now: Instant) -> f64 {
        if self.penalized_until.is_some_and(|t| t > now) {
            return MIN_FACTOR;
        }
        (0.5f64).powi(self.consecutive_failures.min(6) as i32)
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// Back-off ejections that still count towards the next ejection's length.
    pub fn ejections(&self) -> u32 {
        self.ejections
    }

    fn decay_ejections(&mut self, now: Instant, policy: &HealthPolicy) {
        let Some(last) = self.last_bad else { return };
        let period = policy.max_ejection.as_nanos().max(1);
        let halvings = now.saturating_duration_since(last).as_nanos() / period;
        self.ejections = self
            .ejections
            .checked_shr(halvings.min(32) as u32)
            .unwrap_or(0);
    }
}

/// How many of `enabled` channels may be ejected at once: `floor(enabled × fraction)`, and
/// never all of them, so a model always has a channel in rotation.
pub fn ejection_limit(enabled: usize, policy: &HealthPolicy) -> usize {
    let fraction = policy.max_ejected_fraction;
    if enabled < 2 || fraction.is_nan() || fraction <= 0.0 {
        return 0;
    }
    // The epsilon keeps 0.3 × 10 at 3 despite binary rounding.
    let share = (enabled as f64 * fraction.min(1.0) + 1e-9).floor() as usize;
    share.min(enabled - 1)
}

#[cfg(test)]
// Health factors are exact powers of two.
#[allow(clippy::float_cmp)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    /// Feeds `n` failures at `at` and grants whatever ejection they ask for.
    fn fail(
        h: &mut ChannelHealth,
        n: u32,
        at: Instant,
        policy: &HealthPolicy,
    ) -> Option<EjectRequest> {
        let mut last = None;
        for _ in 0..n {
            if let Some(req) = h.record(Outcome::ServerError(502), at, policy) {
                h.eject(at, req);
                last = Some(req);
            }
        }
        last
    }

    #[test]
    fn ejects_after_threshold_consecutive_failures() {
        let p = HealthPolicy::default();
        let t0 = Instant::now();
        let mut h = ChannelHealth::new();
        assert_eq!(h.record(Outcome::Timeout, t0, &p), None);
        assert_eq!(h.record(Outcome::ConnectError, t0, &p), None);
        assert!(!h.is_ejected(t0));
        let req = h.record(Outcome::ServerError(500), t0, &p).unwrap();
        assert_eq!(
            req,
            EjectRequest {
                duration: secs(10),
                backoff: true
            }
        );
        h.eject(t0, req);
        assert_eq!(h.ejected_until(t0), Some(t0 + secs(10)));
        assert_eq!(h.ejected_until(t0 + secs(10)), None, "window is half-open");
    }

    #[test]
    fn success_resets_the_counter() {
        let p = HealthPolicy::default();
        let t0 = Instant::now();
        let mut h = ChannelHealth::new();
        for _ in 0..10 {
            assert_eq!(h.record(Outcome::Timeout, t0, &p), None);
            assert_eq!(h.record(Outcome::Timeout, t0, &p), None);
            assert_eq!(h.consecutive_failures(), 2);
            assert_eq!(h.record(Outcome::Success, t0, &p), None);
            assert_eq!(h.consecutive_failures(), 0);
        }
        assert!(!h.is_ejected(t0));
    }

    #[test]
    fn back_off_grows_linearly_up_to_the_cap() {
        let p = HealthPolicy::default();
        let mut now = Instant::now();
        let mut h = ChannelHealth::new();
        let mut lengths = Vec::new();
        for _ in 0..40 {
            let req = fail(&mut h, 3, now, &p).unwrap();
            lengths.push(req.duration.as_secs());
            now = h.ejected_until(now).unwrap();
        }
        assert_eq!(&lengths[..5], &[10, 20, 30, 40, 50]);
        assert_eq!(lengths[29], 300);
        assert_eq!(lengths[39], 300, "capped at max_ejection");
    }

    #[test]
    fn half_open_probe_failure_re_ejects_at_once() {
        let p = HealthPolicy::default();
        let t0 = Instant::now();
        let mut h = ChannelHealth::new();
        fail(&mut h, 3, t0, &p).unwrap();
        let after = t0 + secs(10);
        assert!(
            h.factor(after) < 0.2,
            "a just-unejected channel gets a trickle"
        );
        let req = h.record(Outcome::Timeout, after, &p).unwrap();
        assert_eq!(req.duration, secs(20));
    }

    #[test]
    fn failures_while_ejected_do_not_extend_the_window() {
        let p = HealthPolicy::default();
        let t0 = Instant::now();
        let mut h = ChannelHealth::new();
        fail(&mut h, 3, t0, &p).unwrap();
        assert_eq!(h.record(Outcome::Timeout, t0 + secs(5), &p), None);
        assert_eq!(h.ejected_until(t0), Some(t0 + secs(10)));
        assert_eq!(h.ejections(), 1);
    }

    #[test]
    fn multiplier_halves_per_clean_max_ejection() {
        let p = HealthPolicy::default();
        let mut now = Instant::now();
        let mut h = ChannelHealth::new();
        for _ in 0..8 {
            fail(&mut h, 3, now, &p).unwrap();
            now = h.ejected_until(now).unwrap();
        }
        assert_eq!(h.ejections(), 8);
        h.record(Outcome::Success, now, &p);
        // Clean for two max_ejection periods (measured from the end of the last window).
        now += secs(600);
        let req = fail(&mut h, 3, now, &p).unwrap();
        assert_eq!(
            req.duration,
            secs(30),
            "8 halved twice is 2, so the next is the 3rd"
        );
        // A short clean period does not decay it.
        now = h.ejected_until(now).unwrap() + secs(299);
        let req = fail(&mut h, 3, now, &p).unwrap();
        assert_eq!(req.duration, secs(40));
    }

    #[test]
    fn retry_after_is_honoured_exactly() {
        let p = HealthPolicy::default();
        let t0 = Instant::now();
        let mut h = ChannelHealth::new();
        let ra = |s| Outcome::RateLimited {
            retry_after: Some(secs(s)),
        };
        let req = h.record(ra(42), t0, &p).unwrap();
        assert_eq!(
            req,
            EjectRequest {
                duration: secs(42),
                backoff: false
            }
        );
        h.eject(t0, req);
        assert_eq!(h.ejected_until(t0), Some(t0 + secs(42)));
        assert_eq!(h.ejections(), 0, "a Retry-After does not grow the back-off");
        // Beyond max_ejection, up to one hour.
        assert_eq!(h.record(ra(1200), t0, &p).unwrap().duration, secs(1200));
        assert_eq!(h.record(ra(7200), t0, &p).unwrap().duration, secs(3600));
        // Shorter than the base ejection: exactly as asked all the same.
        assert_eq!(h.record(ra(2), t0, &p).unwrap().duration, secs(2));
        assert_eq!(h.record(ra(0), t0, &p).unwrap().duration, Duration::ZERO);
        // A later, longer Retry-After extends a running ejection; a shorter one keeps it.
        h.eject(
            t0 + secs(1),
            EjectRequest {
                duration: secs(100),
                backoff: false,
            },
        );
        assert_eq!(h.ejected_until(t0), Some(t0 + secs(101)));
        h.eject(
            t0 + secs(2),
            EjectRequest {
                duration: secs(10),
                backoff: false,
            },
        );
        assert_eq!(h.ejected_until(t0), Some(t0 + secs(101)));
    }

    #[test]
    fn classifies_outcomes() {
        let p = HealthPolicy {
            consecutive_failures: 1,
            ..HealthPolicy::default()
        };
        let t0 = Instant::now();
        let bad = [
            Outcome::ConnectError,
            Outcome::Timeout,
            Outcome::ServerError(503),
            Outcome::RateLimited { retry_after: None },
            Outcome::ClientError(401),
            Outcome::ClientError(403),
            Outcome::ClientError(404),
        ];
        for o in bad {
            let mut h = ChannelHealth::new();
            assert!(
                h.record(o, t0, &p).is_some_and(|r| r.backoff),
                "{o:?} is a failure"
            );
        }
        for o in [
            Outcome::ClientError(400),
            Outcome::ClientError(413),
            Outcome::ClientError(422),
            Outcome::Cancelled,
        ] {
            let mut h = ChannelHealth::new();
            h.record(Outcome::Timeout, t0, &HealthPolicy::default());
            assert_eq!(
                h.record(o, t0, &p),
                None,
                "{o:?} is not the channel's fault"
            );
            assert_eq!(h.consecutive_failures(), 1, "{o:?} neither fails nor heals");
        }
    }

    #[test]
    fn factor_falls_with_failures_and_penalty() {
        let p = HealthPolicy {
            consecutive_failures: 100,
            ..HealthPolicy::default()
        };
        let t0 = Instant::now();
        let mut h = ChannelHealth::new();
        let mut factors = vec![h.factor(t0)];
        for _ in 0..8 {
            h.record(Outcome::Timeout, t0, &p);
            factors.push(h.factor(t0));
        }
        assert_eq!(&factors[..4], &[1.0, 0.5, 0.25, 0.125]);
        assert_eq!(factors[8], MIN_FACTOR);
        assert!(factors.iter().all(|&f| f > 0.0 && f <= 1.0));

        let mut h = ChannelHealth::new();
        h.penalize(
            t0,
            EjectRequest {
                duration: secs(30),
                backoff: false,
            },
        );
        assert_eq!(h.factor(t0 + secs(29)), MIN_FACTOR);
        assert_eq!(h.factor(t0 + secs(30)), 1.0, "penalty expires");
        h.penalize(
            t0,
            EjectRequest {
                duration: secs(30),
                backoff: false,
            },
        );
        h.record(Outcome::Success, t0, &p);
        assert_eq!(h.factor(t0), 1.0, "success lifts the penalty");
    }

    #[test]
    fn ejection_limit_never_all_and_never_above_the_share() {
        let p = |f| HealthPolicy {
            max_ejected_fraction: f,
            ..HealthPolicy::default()
        };
        let cases = [
            (0, 0.5, 0),
            (1, 0.5, 0),
            (2, 0.5, 1),
            (3, 0.5, 1),
            (4, 0.5, 2),
            (10, 0.3, 3),
            (5, 0.1, 0),
            (3, 1.0, 2),
            (3, 5.0, 2),
            (3, 0.0, 0),
            (3, -1.0, 0),
            (3, f64::NAN, 0),
        ];
        for (n, f, want) in cases {
            assert_eq!(ejection_limit(n, &p(f)), want, "{n} channels at {f}");
        }
    }
}
