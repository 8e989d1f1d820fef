//! The generic cell rate algorithm, as one function of the stored theoretical arrival time
//! (TAT). The Lua script in `redis.rs` is this same function, run inside Redis on Redis's
//! clock, so every worker of every host shares one exact limit.

/// A rate: `emission_us` between units on average, `burst` units at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub emission_us: i64,
    pub burst: i64,
}

impl Rate {
    /// `per_minute` units a minute (requests, tokens), `burst` of them at once (at least 1).
    pub fn per_minute(per_minute: u64, burst: u64) -> Self {
        let per_minute = per_minute.max(1);
        Rate {
            emission_us: (60_000_000 / per_minute).max(1) as i64,
            burst: burst.max(1) as i64,
        }
    }

    /// How far ahead of now the TAT may run: the whole burst.
    pub fn capacity_us(&self) -> i64 {
        self.emission_us * self.burst
    }
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

/// Take `cost` units (give back `-cost` when negative) at `now_us` from a bucket whose TAT is
/// `tat`. Returns the verdict and the TAT to store (unchanged when refused).
pub fn take(rate: Rate, tat: Option<i64>, now_us: i64, cost: i64) -> (Verdict, i64) {
    let tat = tat.unwrap_or(now_us).max(now_us);
    let capacity = rate.capacity_us();
    if cost <= 0 {
        let stored = (tat + cost * rate.emission_us).max(now_us);
        return (verdict(rate, stored, now_us, true, 0), stored);
    }
    let next = tat + cost * rate.emission_us;
    if next - now_us <= capacity {
        return (verdict(rate, next, now_us, true, 0), next);
    }
    let retry = if cost > rate.burst {
        -1
    } else {
        next - capacity - now_us
    };
    (verdict(rate, tat, now_us, false, retry), tat)
}

fn verdict(rate: Rate, tat: i64, now_us: i64, allowed: bool, retry_us: i64) -> Verdict {
    Verdict {
        allowed,
        remaining: ((now_us + rate.capacity_us() - tat) / rate.emission_us).max(0),
        reset_us: (tat - now_us).max(0),
        retry_us,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = 1_000_000;

    #[test]
    fn the_burst_then_the_rate() {
        // 60 a minute, 5 at once: 5 admitted at t=0, then one a second.
        let rate = Rate::per_minute(60, 5);
        let mut tat = None;
        let mut admitted = 0;
        for _ in 0..10 {
            let (v, next) = take(rate, tat, 0, 1);
            tat = Some(next);
            admitted += i64::from(v.allowed);
        }
        assert_eq!(admitted, 5);
        let (refused, _) = take(rate, tat, 0, 1);
        assert_eq!((refused.allowed, refused.retry_us), (false, SECOND));
        let mut at = 0;
        let mut later = 0;
        while at < 10 * SECOND {
            at += SECOND / 10;
            let (v, next) = take(rate, tat, at, 1);
            tat = Some(next);
            later += i64::from(v.allowed);
        }
        assert_eq!(later, 10, "one a second for ten seconds");
    }

    #[test]
    fn remaining_reset_refunds_and_oversized_costs() {
        let rate = Rate::per_minute(600, 10); // 100 ms apart, 10 at once
        let (v, tat) = take(rate, None, 0, 4);
        assert!(v.allowed);
        assert_eq!((v.remaining, v.reset_us), (6, 400_000));
        let (v, tat) = take(rate, Some(tat), 0, -3);
        assert!(v.allowed);
        assert_eq!(v.remaining, 9, "three given back");
        let (v, _) = take(rate, Some(tat), 0, 11);
        assert_eq!(
            (v.allowed, v.retry_us),
            (false, -1),
            "more than the burst: never"
        );
        let (v, _) = take(rate, Some(tat), 10 * SECOND, 10);
        assert!(v.allowed, "a full bucket again after a while");
    }
}
