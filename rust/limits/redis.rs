//! Buckets in Redis: `gcra::take` as a Lua script, run atomically on Redis's own clock
//! (`TIME`), so workers on hosts whose clocks disagree still share one exact limit.

use redis::aio::ConnectionManager;

use super::REDIS_TIMEOUT;
use super::gcra::{Rate, Verdict};

/// `gcra::take` in Lua. KEYS[1] the bucket, stored as "<points> <µs>"; ARGV units a minute,
/// burst, cost. The key expires once the bucket would be full again, so idle buckets cost
/// Redis nothing.
const TAKE: &str = r"
local per_minute = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local unit = 60000000
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local level = 0
local stored = redis.call('GET', KEYS[1])
if stored then
  local points, at = string.match(stored, '^(%d+) (%d+)$')
  if points then
    level = math.max(tonumber(points) - math.max(now - tonumber(at), 0) * per_minute, 0)
  end
end
local capacity = burst * unit
local allowed = 1
local retry = 0
if cost <= 0 then
  level = math.max(level + cost * unit, 0)
elseif level + cost * unit <= capacity then
  level = level + cost * unit
else
  allowed = 0
  if cost > burst then
    retry = -1
  else
    retry = math.ceil((level + cost * unit - capacity) / per_minute)
  end
end
local reset = math.ceil(level / per_minute)
if level > 0 then
  redis.call('SET', KEYS[1], string.format('%d %d', level, now), 'PX', math.floor(reset / 1000) + 1)
else
  redis.call('DEL', KEYS[1])
end
return {allowed, math.floor((capacity - level) / unit), reset, retry}
";

pub struct Buckets {
    connection: ConnectionManager,
    script: redis::Script,
    prefix: String,
}

impl Buckets {
    /// Buckets in the Redis at `url`, connected on first use and reconnected after a failure;
    /// a call waits at most `REDIS_TIMEOUT` (an error here is a malformed URL).
    pub fn connect(url: &str, prefix: &str) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| format!("redis URL {url}: {e}"))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(1);
        let connection = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| format!("redis at {url}: {e}"))?;
        Ok(Buckets {
            connection,
            script: redis::Script::new(TAKE),
            prefix: prefix.to_owned(),
        })
    }

    pub async fn take(&self, bucket: &str, rate: Rate, cost: i64) -> Result<Verdict, String> {
        let mut connection = self.connection.clone();
        let mut invocation = self.script.key(format!("{}{bucket}", self.prefix));
        invocation.arg(rate.per_minute).arg(rate.burst).arg(cost);
        let call = invocation.invoke_async::<(i64, i64, i64, i64)>(&mut connection);
        let reply = tokio::time::timeout(REDIS_TIMEOUT, call)
            .await
            .map_err(|_| format!("rate-limit bucket {bucket}: Redis did not answer"))?
            .map_err(|e| format!("rate-limit bucket {bucket}: {e}"))?;
        Ok(Verdict {
            allowed: reply.0 == 1,
            remaining: reply.1,
            reset_us: reply.2,
            retry_us: reply.3,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::process::{Child, Command, Stdio};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::time::{Duration, Instant};

    use super::super::Limiter;
    use super::*;

    /// A private redis-server on a free port, stopped when dropped.
    struct Server {
        child: Child,
        url: String,
    }

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn free_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }

    fn server() -> Option<Server> {
        server_on(free_port())
    }

    fn server_on(port: u16) -> Option<Server> {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn();
        let Ok(child) = child else {
            eprintln!("skipped: redis-server is not installed");
            return None;
        };
        let url = format!("redis://127.0.0.1:{port}/0");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Server { child, url })
    }

    /// Four workers (each its own connection and leases) hammering one bucket admit what one
    /// would: the burst, then the rate.
    ///
    /// Returns what was admitted and how long the hammering lasted (from the first take to the
    /// last task's end), which bounds what the rate may have refilled.
    async fn hammer(url: &str, rate: Rate, run: Duration) -> (i64, Duration) {
        let admitted = Arc::new(AtomicI64::new(0));
        let mut limiters = Vec::new();
        for _ in 0..4 {
            limiters.push(Arc::new(Limiter::with_redis(url, "test:").unwrap()));
        }
        let start = Instant::now();
        let end = start + run;
        let mut workers = Vec::new();
        for limiter in &limiters {
            for _ in 0..4 {
                let (limiter, admitted) = (limiter.clone(), admitted.clone());
                workers.push(tokio::spawn(async move {
                    while Instant::now() < end {
                        if limiter.take("bucket", rate, 1).await.allowed {
                            admitted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }));
            }
        }
        for worker in workers {
            worker.await.unwrap();
        }
        (admitted.load(Ordering::Relaxed), start.elapsed())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn many_workers_share_one_exact_limit() {
        let Some(server) = server() else { return };
        // 60 a minute, 5 at once, for 2.5 s: 5 + 2 (at 1 s and 2 s).
        let (slow, _) = hammer(
            &server.url,
            Rate::per_minute(60, 5),
            Duration::from_millis(2_500),
        )
        .await;
        assert_eq!(slow, 7);
        // 12 000 a minute (200/s, leased), 100 at once, for ~1 s: at most 100 + what refilled
        // while the hammering lasted (+1 for the edge), and no fewer than the rate minus what
        // leases parked at the end.
        let fast_rate = Rate::per_minute(12_000, 100);
        let buckets = Buckets::connect(&server.url, "test:").unwrap();
        buckets.take("bucket", fast_rate, -1_000_000).await.unwrap();
        let (fast, lasted) = hammer(&server.url, fast_rate, Duration::from_secs(1)).await;
        let most = 100 + (lasted.as_secs_f64() * 200.0).ceil() as i64 + 1;
        assert!(
            (250..=most).contains(&fast),
            "{fast} admitted in {lasted:?}"
        );
    }

    #[tokio::test]
    async fn leases_take_refunds_and_give_back_what_they_did_not_use() {
        let Some(server) = server() else { return };
        let limiter = Limiter::with_redis(&server.url, "l:").unwrap();
        let buckets = Buckets::connect(&server.url, "l:").unwrap();
        // 60 000 tokens a minute (1 ms each), a minute's worth at once: leases of 50.
        let rate = Rate::per_minute(60_000, 60_000);
        let started = Instant::now();
        assert!(limiter.take("t", rate, 10).await.allowed);
        // The lease took 50 from Redis; a settled reservation goes back into it, not to Redis.
        assert!(limiter.take("t", rate, -5).await.allowed);
        // A pause such as a busy machine makes: the bound below must hold whatever it lasts.
        tokio::time::sleep(Duration::from_millis(5)).await;
        let seen = buckets.take("t", rate, 0).await.unwrap();
        // Redis refilled one unit a millisecond since the lease was taken, however long this
        // machine took to get here.
        let refilled = i64::try_from(started.elapsed().as_millis()).unwrap() + 1;
        assert!(
            (59_950..=59_950 + refilled).contains(&seen.remaining),
            "{} after {refilled} ms",
            seen.remaining
        );
        // Once the lease expires, the sweep returns its 45 units (50 - 10 + 5).
        tokio::time::sleep(Duration::from_millis(120)).await;
        limiter.sweep().await;
        let seen = buckets.take("t", rate, 0).await.unwrap();
        assert!(seen.remaining >= 60_000 - 10, "{}", seen.remaining);
    }

    #[tokio::test]
    async fn the_script_matches_the_algorithm() {
        let Some(server) = server() else { return };
        let buckets = Buckets::connect(&server.url, "t:").unwrap();
        let rate = Rate::per_minute(600, 10);
        let v = buckets.take("b", rate, 4).await.unwrap();
        assert!(v.allowed);
        assert_eq!(v.remaining, 6);
        assert!((390_000..=400_000).contains(&v.reset_us), "{}", v.reset_us);
        let v = buckets.take("b", rate, -3).await.unwrap();
        assert_eq!(v.remaining, 9);
        let v = buckets.take("b", rate, 11).await.unwrap();
        assert_eq!((v.allowed, v.retry_us), (false, -1));
        let v = buckets.take("b", rate, 10).await.unwrap();
        assert!(!v.allowed);
        assert!(v.retry_us > 0 && v.retry_us <= 100_000, "{}", v.retry_us);
        // A rate that is no whole number of microseconds a unit: 7 M a minute, 8.57 µs each.
        let v = buckets
            .take("fine", Rate::per_minute(7_000_000, 1_000), 1_000)
            .await
            .unwrap();
        assert_eq!((v.allowed, v.remaining), (true, 0));
        assert!((8_000..=8_572).contains(&v.reset_us), "{}", v.reset_us);
    }

    #[tokio::test]
    async fn a_worker_limits_in_memory_while_redis_is_down_and_comes_back_to_it() {
        let port = free_port();
        let url = format!("redis://127.0.0.1:{port}/0");
        let limiter = Limiter::with_redis(&url, "down:").unwrap();
        let rate = Rate::per_minute(60, 2);
        // Nobody listens: this worker limits on its own, without waiting on Redis.
        let started = Instant::now();
        let mut verdicts = Vec::new();
        for _ in 0..3 {
            verdicts.push(limiter.take("b", rate, 1).await.allowed);
        }
        assert_eq!(verdicts, [true, true, false]);
        assert!(
            started.elapsed() < REDIS_TIMEOUT * 2,
            "{:?}",
            started.elapsed()
        );
        // Redis comes up: within a retry pause or two the worker takes from it again.
        let Some(server) = server_on(port) else {
            return;
        };
        let buckets = Buckets::connect(&url, "down:").unwrap();
        let roomy = Rate::per_minute(60_000, 60_000);
        let deadline = Instant::now() + super::super::REDIS_RETRY * 4;
        loop {
            limiter.take("probe", roomy, 1).await;
            if buckets.take("probe", roomy, 0).await.unwrap().remaining < 60_000 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the worker never came back to Redis"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // A fresh bucket there, where the one in memory is nearly empty.
        let v = limiter.take("b", rate, 1).await;
        assert_eq!((v.allowed, v.remaining), (true, 1));
        assert_eq!(buckets.take("b", rate, 0).await.unwrap().remaining, 1);
        // Redis goes away mid-run: requests are still decided, promptly.
        drop(server);
        let started = Instant::now();
        limiter.take("b", rate, 1).await;
        assert!(
            started.elapsed() < REDIS_TIMEOUT * 2,
            "{:?}",
            started.elapsed()
        );
    }
}
