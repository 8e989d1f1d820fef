//! Rate limits that hold across any number of workers: GCRA buckets (`gcra`) kept in Redis and
//! updated by one Lua script on Redis's clock (`redis`), or kept in memory when there is no
//! Redis (embedded mode: one process, so memory is exact).
//!
//! A worker serving a fast bucket takes a *lease* — several units in one Redis call — and
//! admits requests from it locally until it runs out or expires; what is left at expiry goes
//! back. Lease sizes follow the rate (what the bucket refills in `LEASE_WINDOW`), so a slow
//! bucket (60 a minute) leases nothing and every worker asks Redis each time: exact, where
//! exactness is visible, and cheap, where traffic is heavy.
//!
//! When Redis does not answer (down, unreachable, slower than `REDIS_TIMEOUT`), the worker
//! limits in its own memory — each worker then allows the whole limit, which is lenient but
//! still a limit — and asks Redis again after `REDIS_RETRY`.

pub mod gcra;
pub mod redis;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

pub use self::gcra::{Rate, Verdict};

/// A lease covers what its bucket refills in this long.
const LEASE_WINDOW: Duration = Duration::from_millis(50);
/// Never lease more than this share of the burst, so other workers keep some.
const LEASE_SHARE_OF_BURST: i64 = 8;
/// A Redis call slower than this counts as Redis being down.
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(250);
/// How long a worker limits in memory after Redis failed before it asks again.
pub(crate) const REDIS_RETRY: Duration = Duration::from_secs(1);

/// Buckets in this process's memory.
struct Memory {
    started: Instant,
    levels: Mutex<HashMap<String, gcra::Level>>,
}

impl Memory {
    fn take(&self, bucket: &str, rate: Rate, cost: i64) -> Verdict {
        let now = i64::try_from(self.started.elapsed().as_micros()).unwrap_or(i64::MAX);
        let mut levels = self.levels.lock();
        let (verdict, level) = gcra::take(rate, levels.get(bucket).copied(), now, cost);
        if level.points > 0 {
            levels.insert(bucket.to_owned(), level);
        } else {
            levels.remove(bucket);
        }
        verdict
    }
}

/// Buckets in Redis, and when it last failed.
struct Shared {
    buckets: redis::Buckets,
    failed_until: Mutex<Option<Instant>>,
}

/// Units taken ahead from Redis by this worker.
#[derive(Debug, Clone, Copy)]
struct Lease {
    units: i64,
    rate: Rate,
    expires: Instant,
    /// What Redis said when the lease was taken, for the headers of requests it admits.
    remaining: i64,
    reset_us: i64,
}

pub struct Limiter {
    memory: Memory,
    shared: Option<Shared>,
    leases: Mutex<HashMap<String, Lease>>,
}

impl Limiter {
    /// Buckets in this process's memory.
    pub fn in_memory() -> Self {
        Limiter {
            memory: Memory {
                started: Instant::now(),
                levels: Mutex::new(HashMap::new()),
            },
            shared: None,
            leases: Mutex::new(HashMap::new()),
        }
    }

    /// Buckets in the Redis at `url`, shared by every worker that uses it; connected on first
    /// use (an error here is a malformed URL).
    pub fn with_redis(url: &str, prefix: &str) -> Result<Self, String> {
        Ok(Limiter {
            shared: Some(Shared {
                buckets: redis::Buckets::connect(url, prefix)?,
                failed_until: Mutex::new(None),
            }),
            ..Limiter::in_memory()
        })
    }

    /// Take `cost` units from `bucket` (give back `-cost` when negative).
    pub async fn take(&self, bucket: &str, rate: Rate, cost: i64) -> Verdict {
        if let Some(shared) = &self.shared {
            let now = Instant::now();
            let failed = matches!(*shared.failed_until.lock(), Some(until) if until > now);
            if !failed {
                match self.take_leased(&shared.buckets, bucket, rate, cost).await {
                    Ok(verdict) => return verdict,
                    Err(_) => *shared.failed_until.lock() = Some(now + REDIS_RETRY),
                }
            }
        }
        self.memory.take(bucket, rate, cost)
    }

    async fn take_leased(
        &self,
        buckets: &redis::Buckets,
        bucket: &str,
        rate: Rate,
        cost: i64,
    ) -> Result<Verdict, String> {
        let size = lease_size(rate);
        if size <= 1 {
            return buckets.take(bucket, rate, cost).await;
        }
        let now = Instant::now();
        if cost <= 0 {
            // Given back (a token reservation settled): into the live lease, which returns
            // what it does not use when it is renewed; to Redis only when there is none.
            if let Some(lease) = self.leases.lock().get_mut(bucket)
                && lease.expires > now
            {
                lease.units -= cost;
                return Ok(Verdict {
                    allowed: true,
                    remaining: lease.remaining + lease.units,
                    reset_us: lease.reset_us,
                    retry_us: 0,
                });
            }
            return buckets.take(bucket, rate, cost).await;
        }
        let leftover = {
            let mut leases = self.leases.lock();
            match leases.get_mut(bucket) {
                Some(lease) if lease.expires > now && lease.units >= cost => {
                    lease.units -= cost;
                    return Ok(Verdict {
                        allowed: true,
                        remaining: lease.remaining + lease.units,
                        reset_us: lease.reset_us,
                        retry_us: 0,
                    });
                }
                Some(_) => leases.remove(bucket).map_or(0, |l| l.units),
                None => 0,
            }
        };
        // One call takes the new lease and gives back what was left of the old one.
        let want = size.max(cost);
        let verdict = buckets.take(bucket, rate, want - leftover).await?;
        if verdict.allowed {
            self.leases.lock().insert(
                bucket.to_owned(),
                Lease {
                    units: want - cost,
                    rate,
                    expires: now + LEASE_WINDOW * 2,
                    remaining: verdict.remaining,
                    reset_us: verdict.reset_us,
                },
            );
            return Ok(verdict);
        }
        // Not a whole lease's worth left in the bucket (a refused call changes nothing): give
        // back what this worker still held, and ask for this request alone.
        if leftover > 0 {
            buckets.take(bucket, rate, -leftover).await?;
        }
        buckets.take(bucket, rate, cost).await
    }
}

impl Limiter {
    /// Give back what expired leases did not use, so units a worker stopped needing return
    /// to the others. Run it every `LEASE_WINDOW` while the limiter lives (`sweep_every`).
    pub async fn sweep(&self) {
        let Some(shared) = &self.shared else {
            return;
        };
        let now = Instant::now();
        let expired: Vec<(String, Lease)> = {
            let mut leases = self.leases.lock();
            let done: Vec<String> = leases
                .iter()
                .filter(|(_, l)| l.expires <= now)
                .map(|(b, _)| b.clone())
                .collect();
            done.into_iter()
                .filter_map(|b| leases.remove(&b).map(|l| (b, l)))
                .collect()
        };
        for (bucket, lease) in expired.into_iter().filter(|(_, l)| l.units != 0) {
            let _ = shared.buckets.take(&bucket, lease.rate, -lease.units).await;
        }
    }

    /// Sweep every `LEASE_WINDOW` until the limiter is dropped.
    pub fn sweep_every(limiter: &std::sync::Arc<Self>) {
        if limiter.shared.is_none() {
            return;
        }
        let weak = std::sync::Arc::downgrade(limiter);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(LEASE_WINDOW);
            loop {
                tick.tick().await;
                let Some(limiter) = weak.upgrade() else {
                    return;
                };
                limiter.sweep().await;
            }
        });
    }
}

/// Units one lease takes: what the bucket refills in `LEASE_WINDOW`, at most an eighth of its
/// burst. One (no lease) for slow buckets.
fn lease_size(rate: Rate) -> i64 {
    let refill = rate.refill(i64::try_from(LEASE_WINDOW.as_micros()).unwrap_or(i64::MAX));
    refill.min(rate.burst / LEASE_SHARE_OF_BURST).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_buckets_lease_nothing() {
        assert_eq!(lease_size(Rate::per_minute(60, 60)), 1);
        assert_eq!(lease_size(Rate::per_minute(6_000, 6_000)), 5);
        assert_eq!(
            lease_size(Rate::per_minute(600_000, 16)),
            2,
            "an eighth of the burst"
        );
    }

    #[tokio::test]
    async fn memory_buckets_admit_the_burst_then_refuse() {
        let limiter = Limiter::in_memory();
        let rate = Rate::per_minute(60, 3);
        let mut allowed = 0;
        for _ in 0..5 {
            allowed += i32::from(limiter.take("k", rate, 1).await.allowed);
        }
        assert_eq!(allowed, 3);
        assert!(limiter.take("other", rate, 1).await.allowed);
    }
}
