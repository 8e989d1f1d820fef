//! Buckets in Redis: `gcra::take` as a Lua script, run atomically on Redis's own clock
//! (`TIME`), so workers on hosts whose clocks disagree still share one exact limit.

use redis::aio::ConnectionManager;

use super::gcra::{Rate, Verdict};

/// `gcra::take` in Lua. KEYS[1] the bucket; ARGV emission interval (µs), burst, cost. The key
/// expires once the bucket would be full again, so idle buckets cost Redis nothing.
const TAKE: &str = r"
local emission = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local capacity = emission * burst
local allowed = 1
local retry = 0
if cost <= 0 then
  tat = math.max(tat + cost * emission, now)
else
  local next = tat + cost * emission
  if next - now <= capacity then
    tat = next
  else
    allowed = 0
    if cost > burst then retry = -1 else retry = next - capacity - now end
  end
end
if allowed == 1 then
  local ttl = math.floor((tat - now) / 1000) + 1
  redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', ttl)
end
local remaining = math.max(math.floor((now + capacity - tat) / emission), 0)
return {allowed, remaining, math.max(tat - now, 0), retry}
";

pub struct Buckets {
    connection: ConnectionManager,
    script: redis::Script,
    prefix: String,
}

impl Buckets {
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| format!("redis URL {url}: {e}"))?;
        let connection = ConnectionManager::new(client)
            .await
            .map_err(|e| format!("redis at {url}: {e}"))?;
        Ok(Buckets {
            connection,
            script: redis::Script::new(TAKE),
            prefix: prefix.to_owned(),
        })
    }

    pub async fn take(&self, bucket: &str, rate: Rate, cost: i64) -> Result<Verdict, String> {
        let mut connection = self.connection.clone();
        let reply: (i64, i64, i64, i64) = self
            .script
            .key(format!("{}{bucket}", self.prefix))
            .arg(rate.emission_us)
            .arg(rate.burst)
            .arg(cost)
            .invoke_async(&mut connection)
            .await
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

    fn server() -> Option<Server> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
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
            limiters.push(Arc::new(Limiter::with_redis(url, "test:").await.unwrap()));
        }
        let start = Instant::now();
        let end = start + run;
        let mut workers = Vec::new();
        for limiter in &limiters {
            for _ in 0..4 {
                let (limiter, admitted) = (limiter.clone(), admitted.clone());
                workers.push(tokio::spawn(async move {
                    while Instant::now() < end {
                        if limiter.take("bucket", rate, 1).await.unwrap().allowed {
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
        let buckets = Buckets::connect(&server.url, "test:").await.unwrap();
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
        let limiter = Limiter::with_redis(&server.url, "l:").await.unwrap();
        let buckets = Buckets::connect(&server.url, "l:").await.unwrap();
        // 60 000 tokens a minute (1 ms each), a minute's worth at once: leases of 50.
        let rate = Rate::per_minute(60_000, 60_000);
        assert!(limiter.take("t", rate, 10).await.unwrap().allowed);
        // The lease took 50 from Redis; a settled reservation goes back into it, not to Redis.
        assert!(limiter.take("t", rate, -5).await.unwrap().allowed);
        let seen = buckets.take("t", rate, 0).await.unwrap();
        // (a unit or two may have refilled meanwhile: one a millisecond)
        assert!(
            (59_950..=59_952).contains(&seen.remaining),
            "{}",
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
        let buckets = Buckets::connect(&server.url, "t:").await.unwrap();
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
    }
}
