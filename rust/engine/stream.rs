//! The hand-off buffer between an upstream stream (pumped on the Rust runtime) and the Python
//! task writing to the client. Data is coalesced: whatever arrived since the last read goes out
//! in one write, so a slow reader costs one wake-up per batch, not per chunk.

use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use tokio::sync::Notify;

/// Called once when data or the end becomes available to a waiting reader.
pub type Waker = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct Buffer {
    data: Vec<u8>,
    ended: bool,
    waiter: Option<Waker>,
}

#[derive(Default)]
pub struct StreamBuffer {
    buffer: Mutex<Buffer>,
    cancelled: AtomicBool,
    cancel: Notify,
}

pub enum Read {
    Data(Vec<u8>),
    Pending,
    Ended,
}

impl StreamBuffer {
    pub fn push(&self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let waiter = {
            let mut b = self.buffer.lock();
            b.data.extend_from_slice(bytes);
            b.waiter.take()
        };
        if let Some(wake) = waiter {
            wake();
        }
    }

    pub fn end(&self) {
        let waiter = {
            let mut b = self.buffer.lock();
            b.ended = true;
            b.waiter.take()
        };
        if let Some(wake) = waiter {
            wake();
        }
    }

    /// Everything buffered so far, or whether the reader must wait.
    pub fn read(&self) -> Read {
        let mut b = self.buffer.lock();
        if !b.data.is_empty() {
            Read::Data(std::mem::take(&mut b.data))
        } else if b.ended {
            Read::Ended
        } else {
            Read::Pending
        }
    }

    /// Park a waker until data or the end arrives. Returns the waker back when something is
    /// already there, so the caller can resolve at once without a round trip.
    pub fn wait(&self, wake: Waker) -> Option<Waker> {
        let mut b = self.buffer.lock();
        if !b.data.is_empty() || b.ended {
            Some(wake)
        } else {
            b.waiter = Some(wake);
            None
        }
    }

    /// The client went away: the pump stops reading and drops the upstream connection.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
        self.cancel.notify_one();
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    pub async fn cancelled(&self) {
        if !self.is_cancelled() {
            self.cancel.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn coalesces_and_wakes_once() {
        let buf = StreamBuffer::default();
        assert!(matches!(buf.read(), Read::Pending));
        let woken = Arc::new(AtomicUsize::new(0));
        let w = woken.clone();
        assert!(
            buf.wait(Box::new(move || {
                w.fetch_add(1, Ordering::SeqCst);
            }))
            .is_none()
        );
        buf.push(b"a");
        buf.push(b"b");
        assert_eq!(woken.load(Ordering::SeqCst), 1);
        match buf.read() {
            Read::Data(d) => assert_eq!(d, b"ab"),
            _ => panic!("expected data"),
        }
        buf.end();
        assert!(matches!(buf.read(), Read::Ended));
        assert!(
            buf.wait(Box::new(|| {})).is_some(),
            "ended: resolve at once"
        );
    }

    #[tokio::test]
    async fn cancel_before_wait_is_seen() {
        let buf = StreamBuffer::default();
        buf.cancel();
        buf.cancelled().await;
        assert!(buf.is_cancelled());
    }
}
