//! The generic cell rate algorithm in its leaky-bucket form, as one function of the stored
//! state. The Lua script in `redis.rs` is this same function, run inside Redis on Redis's
//! clock, so every worker of every host shares one exact limit.
//!
//! The bucket's *level* is counted in points: one unit (a request, a token) is
//! `MINUTE_US` points and the bucket drains `per_minute` points a microsecond, so any
//! integer rate is exact (an emission interval in whole microseconds would round 7 M
//! tokens a minute to 7.5 M). Every value stays below 2⁵³, exact in Redis's Lua numbers.

/// Points one unit weighs: the microseconds in a minute.
pub const MINUTE_US: i64 = 60_000_000;
/// The largest burst whose level stays exact as a Lua number (2⁵³ / `MINUTE_US`).
pub const MAX_BURST: i64 = 150_000_000;

/// A rate: `per_minute` units a minute on average, `burst` units at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub per_minute: i64,
    pub burst: i64,
}

impl Rate {
    /// `per_minute` units a minute (requests, tokens), `burst` of them at once (at least 1).
    pub fn per_minute(per_minute: u64, burst: u64) -> Self {
        let clamp = |v: u64, most: i64| i64::try_from(v).unwrap_or(most).clamp(1, most);
        Rate {
            per_minute: clamp(per_minute, i64::MAX / MINUTE_US),
            burst: clamp(burst, MAX_BURST),
        }
    }

    /// The level of a full bucket.
    pub fn capacity(&self) -> i64 {
        self.burst * MINUTE_US
    }

    /// Microseconds the bucket takes to drain `points` (rounded up).
    pub fn drain_us(&self, points: i64) -> i64 {
        (points.max(0) + self.per_minute - 1) / self.per_minute
    }

    /// Units the bucket refills in `us` microseconds.
    pub fn refill(&self, us: i64) -> i64 {
        i64::try_from(i128::from(us) * i128::from(self.per_minute) / i128::from(MINUTE_US))
            .unwrap_or(i64::MAX)
    }
}

/// A bucket's stored state: its level (points) at a moment (µs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Level {
    pub points: i64,
    pub at_us: i64,
}

/// What a bucket said to a request for `cost` units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    /// Units that could still be taken at once after this decision.
    pub remaining: i64,
    /// Microseconds until the bucket is full again.
    pub reset_us: i64,
    /// Microseconds until `cost` units would be admitted (0 when allowed; -1 if never: the
    /// cost is above the burst).
    pub retry_us: i64,
}

/// Take `cost` units (give back `-cost` when negative) at `now_us` from a bucket last at
/// `level`. Returns the verdict and the level to store (drained to now even when refused).
pub fn take(rate: Rate, level: Option<Level>, now_us: i64, cost: i64) -> (Verdict, Level) {
    let drained = level.map_or(0, |l| {
        let elapsed = (now_us - l.at_us).max(0);
        l.points
            .saturating_sub(elapsed.saturating_mul(rate.per_minute))
            .max(0)
    });
    let capacity = rate.capacity();
    let weight = cost.saturating_mul(MINUTE_US);
    let (allowed, points, retry_us) = if cost <= 0 {
        (true, drained.saturating_add(weight).max(0), 0)
    } else if drained.saturating_add(weight) <= capacity {
        (true, drained + weight, 0)
    } else if cost > rate.burst {
        (false, drained, -1)
    } else {
        (false, drained, rate.drain_us(drained + weight - capacity))
    };
    let verdict = Verdict {
        allowed,
        remaining: (capacity - points) / MINUTE_US,
        reset_us: rate.drain_us(points),
        retry_us,
    };
    let stored = Level {
        points,
        at_us: now_us,
    };
    (verdict, stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = 1_000_000;

    #[test]
    fn the_burst_then_the_rate() {
        // 60 a minute, 5 at once: 5 admitted at t=0, then one a second.
        let rate = Rate::per_minute(60, 5);
        let mut level = None;
        let mut admitted = 0;
        for _ in 0..10 {
            let (v, next) = take(rate, level, 0, 1);
            level = Some(next);
            admitted += i64::from(v.allowed);
        }
        assert_eq!(admitted, 5);
        let (refused, _) = take(rate, level, 0, 1);
        assert_eq!((refused.allowed, refused.retry_us), (false, SECOND));
        let mut at = 0;
        let mut later = 0;
        while at < 10 * SECOND {
            at += SECOND / 10;
            let (v, next) = take(rate, level, at, 1);
            level = Some(next);
            later += i64::from(v.allowed);
        }
        assert_eq!(later, 10, "one a second for ten seconds");
    }

    #[test]
    fn remaining_reset_refunds_and_oversized_costs() {
        let rate = Rate::per_minute(600, 10); // 100 ms apart, 10 at once
        let (v, level) = take(rate, None, 0, 4);
        assert!(v.allowed);
        assert_eq!((v.remaining, v.reset_us), (6, 400_000));
        let (v, level) = take(rate, Some(level), 0, -3);
        assert!(v.allowed);
        assert_eq!(v.remaining, 9, "three given back");
        let (v, _) = take(rate, Some(level), 0, 11);
        assert_eq!(
            (v.allowed, v.retry_us),
            (false, -1),
            "more than the burst: never"
        );
        let (v, _) = take(rate, Some(level), 10 * SECOND, 10);
        assert!(v.allowed, "a full bucket again after a while");
        let (v, _) = take(rate, Some(level), 0, i64::MAX);
        assert_eq!((v.allowed, v.retry_us), (false, -1), "no overflow");
    }

    #[test]
    fn rates_that_are_no_whole_number_of_microseconds_apart_are_exact() {
        // 7 M tokens a minute is 8.57 µs a token. Kept busy for a minute (100-token takes
        // every 100 µs while they pass), it admits the burst and 7 M, not the 7.5 M a rounded
        // 8 µs interval would.
        let rate = Rate::per_minute(7_000_000, 1_000);
        let (mut level, mut admitted) = (None, 0);
        let mut at = 0;
        while at <= 60 * SECOND {
            loop {
                let (v, next) = take(rate, level, at, 100);
                level = Some(next);
                if !v.allowed {
                    break;
                }
                admitted += 100;
            }
            at += 100;
        }
        assert!(
            (7_000_900..=7_001_000).contains(&admitted),
            "{admitted} admitted"
        );
        // Above 60 M a minute (less than a microsecond a unit) too.
        let fast = Rate::per_minute(120_000_000, 120_000_000);
        let (v, level) = take(fast, None, 0, 120_000_000);
        assert!(v.allowed);
        let (v, _) = take(fast, Some(level), SECOND, 2_000_000);
        assert!(v.allowed, "two million refilled in a second");
        assert_eq!(v.remaining, 0);
    }
}
