//! Response bodies: a whole buffer, or a pre-rendered buffer released frame by frame on a
//! schedule (TTFT, tokens per second), optionally ending by aborting the connection.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::stats::{InFlight, Outcome};

/// Returned in place of the next frame to make hyper drop the connection mid-body.
#[derive(Debug)]
pub(crate) struct Aborted;

impl fmt::Display for Aborted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("mock provider aborted the response on purpose")
    }
}

impl std::error::Error for Aborted {}

/// How long an aborting body waits after its last frame before failing.
const ABORT_GRACE: Duration = Duration::from_millis(5);

pub(crate) enum MockBody {
    Full(Option<Bytes>),
    Paced(Box<Paced>),
}

impl MockBody {
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        MockBody::Full(Some(bytes.into()))
    }
}

/// A scheduled body. Its [`InFlight`] guard lives here, so hyper dropping the body because
/// the peer closed is what counts a client disconnect.
pub(crate) struct Paced {
    bytes: Bytes,
    /// End offset of each frame in `bytes` and when to release it, relative to `start`.
    frames: Vec<(usize, Duration)>,
    next: usize,
    sent: usize,
    start: Instant,
    sleep: Option<Pin<Box<Sleep>>>,
    /// After the last frame: abort the connection instead of ending the body.
    abort: bool,
    abort_at: Option<Instant>,
    /// Exact length to announce (`Content-Length`) even though less is sent before aborting.
    declared_len: Option<u64>,
    /// Recorded in the guard once the last frame is handed to hyper.
    outcome: Outcome,
    guard: InFlight,
}

impl Paced {
    pub fn new(
        bytes: Bytes,
        frames: Vec<(usize, Duration)>,
        outcome: Outcome,
        guard: InFlight,
    ) -> Self {
        debug_assert!(
            frames
                .windows(2)
                .all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1)
        );
        debug_assert!(frames.last().is_none_or(|f| f.0 <= bytes.len()));
        Paced {
            bytes,
            frames,
            next: 0,
            sent: 0,
            start: Instant::now(),
            sleep: None,
            abort: false,
            abort_at: None,
            declared_len: None,
            outcome,
            guard,
        }
    }

    /// Abort the connection after the last frame; `declared_len` sets `Content-Length`.
    pub fn aborting(mut self, declared_len: Option<u64>) -> Self {
        self.abort = true;
        self.declared_len = declared_len;
        self
    }

    fn finished(&self) -> bool {
        self.next == self.frames.len()
    }
}

impl Body for MockBody {
    type Data = Bytes;
    type Error = Aborted;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Aborted>>> {
        match self.get_mut() {
            MockBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            MockBody::Paced(paced) => paced.poll_next(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            MockBody::Full(bytes) => bytes.is_none(),
            MockBody::Paced(paced) => paced.finished() && !paced.abort,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            MockBody::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            MockBody::Paced(paced) => paced
                .declared_len
                .map_or_else(SizeHint::default, SizeHint::with_exact),
        }
    }
}

impl Paced {
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Aborted>>> {
        let Some(&(end, at)) = self.frames.get(self.next) else {
            if !self.abort {
                return Poll::Ready(None);
            }
            // hyper drops its unflushed write buffer along with the connection when the body
            // errors, so the error waits until the frames before it had time to leave.
            let deadline = *self
                .abort_at
                .get_or_insert_with(|| Instant::now() + ABORT_GRACE);
            ready!(self.sleep_until(deadline, cx));
            // Only once: after the error hyper closes the connection and drops us.
            self.abort = false;
            return Poll::Ready(Some(Err(Aborted)));
        };
        if !at.is_zero() {
            ready!(self.sleep_until(self.start + at, cx));
        }
        self.next += 1;
        let frame = self.bytes.slice(self.sent..end);
        self.sent = end;
        if self.finished() {
            self.guard.finish(self.outcome);
        }
        Poll::Ready(Some(Ok(Frame::data(frame))))
    }

    fn sleep_until(&mut self, deadline: Instant, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= deadline {
            return Poll::Ready(());
        }
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.deadline() != deadline {
            sleep.as_mut().reset(deadline);
        }
        sleep.as_mut().poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::stats::Stats;
    use http_body_util::BodyExt;
    use std::sync::Arc;

    fn paced(stats: &Arc<Stats>, frames: Vec<(usize, Duration)>) -> Paced {
        Paced::new(
            Bytes::from_static(b"aabbbcc"),
            frames,
            Outcome::StreamCompleted,
            InFlight::new(stats.clone()),
        )
    }

    #[tokio::test]
    async fn frames_follow_the_schedule() {
        let stats = Arc::new(Stats::default());
        let ms = Duration::from_millis;
        let mut body = MockBody::Paced(Box::new(paced(
            &stats,
            vec![(2, ms(40)), (5, ms(40)), (7, ms(120))],
        )));
        let t0 = Instant::now();
        let mut got = Vec::new();
        while let Some(frame) = body.frame().await {
            got.push((frame.unwrap().into_data().unwrap(), t0.elapsed()));
        }
        let expected = [(&b"aa"[..], ms(40)), (b"bbb", ms(40)), (b"cc", ms(120))];
        assert_eq!(got.len(), 3);
        for ((data, at), (want, want_at)) in got.iter().zip(expected) {
            assert_eq!(&data[..], want);
            assert!(
                *at >= want_at && *at < want_at + ms(30),
                "{at:?} vs {want_at:?}"
            );
        }
        assert!(body.is_end_stream());
        drop(body);
        let snap = stats.snapshot();
        assert_eq!((snap.streams_completed, snap.client_disconnects), (1, 0));
    }

    #[tokio::test]
    async fn dropping_early_counts_a_disconnect() {
        let stats = Arc::new(Stats::default());
        let mut body = MockBody::Paced(Box::new(paced(
            &stats,
            vec![(2, Duration::ZERO), (7, Duration::from_secs(5))],
        )));
        assert_eq!(
            &body.frame().await.unwrap().unwrap().into_data().unwrap()[..],
            b"aa"
        );
        drop(body);
        assert_eq!(stats.snapshot().client_disconnects, 1);
    }

    #[tokio::test]
    async fn aborting_body_errors_after_its_frames() {
        let stats = Arc::new(Stats::default());
        let body = paced(&stats, vec![(3, Duration::ZERO)]).aborting(Some(7));
        let mut body = MockBody::Paced(Box::new(body));
        assert_eq!(body.size_hint().exact(), Some(7));
        assert_eq!(
            &body.frame().await.unwrap().unwrap().into_data().unwrap()[..],
            b"aab"
        );
        assert!(!body.is_end_stream());
        assert!(body.frame().await.unwrap().is_err());
        drop(body);
        assert_eq!(stats.snapshot().streams_completed, 1);
    }

    #[tokio::test]
    async fn full_body_has_exact_size() {
        let mut body = MockBody::full(&b"{}"[..]);
        assert_eq!(body.size_hint().exact(), Some(2));
        assert_eq!(
            &body.frame().await.unwrap().unwrap().into_data().unwrap()[..],
            b"{}"
        );
        assert!(body.is_end_stream() && body.frame().await.is_none());
    }
}
