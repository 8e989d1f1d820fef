//! Counters the tests read through `GET /mock/stats`, chiefly to prove that the gateway
//! cancels an upstream request the moment its own client goes away.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// A snapshot of the counters since the server started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MockStats {
    /// Completion requests received on any protocol's endpoint (including rejected ones).
    pub requests: u64,
    /// Requests per request `model` (parsed requests only).
    pub models: BTreeMap<String, u64>,
    /// Requests answered with an injected failure (`error_rate` / `error_every`).
    pub errors_injected: u64,
    /// Streams whose response head was sent.
    pub streams_started: u64,
    /// Streams that sent everything up to their last event (`[DONE]`, `message_stop`, the
    /// chunk with the finish reason).
    pub streams_completed: u64,
    /// Streams ended early on purpose by `truncate_after` or `error_after`.
    pub streams_truncated: u64,
    /// Requests whose client went away while the mock still had something to send or was
    /// waiting (hang, delays, pacing).
    pub client_disconnects: u64,
    /// Completion requests being served right now.
    pub in_flight: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Stats {
    requests: AtomicU64,
    models: Mutex<HashMap<String, u64>>,
    errors_injected: AtomicU64,
    streams_started: AtomicU64,
    streams_completed: AtomicU64,
    streams_truncated: AtomicU64,
    client_disconnects: AtomicU64,
    in_flight: AtomicU64,
    /// Set at shutdown so requests cancelled by the server itself are not counted as
    /// client disconnects.
    stopping: AtomicBool,
}

impl Stats {
    pub fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    pub fn model(&self, model: &str) {
        let mut models = self.models.lock();
        match models.get_mut(model) {
            Some(n) => *n += 1,
            None => {
                models.insert(model.to_owned(), 1);
            }
        }
    }

    pub fn error_injected(&self) {
        self.errors_injected.fetch_add(1, Ordering::Relaxed);
    }

    pub fn stream_started(&self) {
        self.streams_started.fetch_add(1, Ordering::Relaxed);
    }

    pub fn stopping(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> MockStats {
        let get = |n: &AtomicU64| n.load(Ordering::Relaxed);
        MockStats {
            requests: get(&self.requests),
            models: self
                .models
                .lock()
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
            errors_injected: get(&self.errors_injected),
            streams_started: get(&self.streams_started),
            streams_completed: get(&self.streams_completed),
            streams_truncated: get(&self.streams_truncated),
            client_disconnects: get(&self.client_disconnects),
            in_flight: get(&self.in_flight),
        }
    }
}

/// How a request ended, recorded when its [`InFlight`] guard is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Dropped before finishing: the client went away (or the server stopped).
    Abandoned,
    Answered,
    StreamCompleted,
    StreamTruncated,
}

/// Tracks one completion request from its parsed body to its last byte handed to hyper. hyper drops
/// the response future or body as soon as it sees the peer close, so a guard dropped while
/// still `Abandoned` is a client disconnect.
#[derive(Debug)]
pub(crate) struct InFlight {
    stats: Arc<Stats>,
    outcome: Outcome,
}

impl InFlight {
    pub fn new(stats: Arc<Stats>) -> Self {
        stats.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight {
            stats,
            outcome: Outcome::Abandoned,
        }
    }

    pub fn finish(&mut self, outcome: Outcome) {
        self.outcome = outcome;
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let s = &self.stats;
        s.in_flight.fetch_sub(1, Ordering::Relaxed);
        let counter = match self.outcome {
            Outcome::Abandoned if s.stopping.load(Ordering::Relaxed) => return,
            Outcome::Abandoned => &s.client_disconnects,
            Outcome::Answered => return,
            Outcome::StreamCompleted => &s.streams_completed,
            Outcome::StreamTruncated => &s.streams_truncated,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_record_outcomes() {
        let stats = Arc::new(Stats::default());
        stats.request();
        stats.model("a");
        stats.model("a");
        stats.model("b");
        let mut done = InFlight::new(stats.clone());
        let lost = InFlight::new(stats.clone());
        assert_eq!(stats.snapshot().in_flight, 2);
        done.finish(Outcome::StreamCompleted);
        drop(done);
        drop(lost);
        let mut truncated = InFlight::new(stats.clone());
        truncated.finish(Outcome::StreamTruncated);
        drop(truncated);
        let mut answered = InFlight::new(stats.clone());
        answered.finish(Outcome::Answered);
        drop(answered);
        let snap = stats.snapshot();
        assert_eq!(snap.requests, 1);
        assert_eq!(
            snap.models,
            BTreeMap::from([("a".to_owned(), 2), ("b".to_owned(), 1)])
        );
        assert_eq!(
            (
                snap.streams_completed,
                snap.streams_truncated,
                snap.client_disconnects,
                snap.in_flight
            ),
            (1, 1, 1, 0)
        );
        stats.stopping();
        drop(InFlight::new(stats.clone()));
        assert_eq!(stats.snapshot().client_disconnects, 1);
    }
}
