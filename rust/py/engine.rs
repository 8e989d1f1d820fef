//! Python face of the engine. The runtime threads never take the GIL: finished work is queued
//! and the event loop's doorbell rung (`Wakeup`, which the loop watches with `add_reader`); the
//! loop then calls `drain()` once and resolves every ready future in a batch. Under load one
//! wake-up covers many requests.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::wakeup::Wakeup;
use crate::engine::error::{ErrorKind, GatewayError};
use crate::engine::protocol::{Call, Surface};
use crate::engine::stream::{Read, StreamBuffer};
use crate::engine::{self as core, Headers, Reply, error_response, new_request_id};

enum Completion {
    Reply(Py<PyAny>, Reply),
    Wake(Py<PyAny>),
}

struct Notifier {
    ready: Mutex<Vec<Completion>>,
    signalled: AtomicBool,
    wakeup: Wakeup,
}

impl Notifier {
    fn new() -> std::io::Result<Self> {
        Ok(Self {
            ready: Mutex::new(Vec::new()),
            signalled: AtomicBool::new(false),
            wakeup: Wakeup::new()?,
        })
    }

    fn push(&self, completion: Completion) {
        self.ready.lock().push(completion);
        self.signal();
    }

    /// Wake the loop unless a wake-up is already pending.
    fn signal(&self) {
        if !self.signalled.swap(true, Ordering::AcqRel) {
            self.wakeup.ring();
        }
    }

    fn take(&self) -> Vec<Completion> {
        // Should a ring land between this clear and the reset below, the loop calls again and
        // finds an empty queue.
        self.wakeup.clear();
        // Reset before taking: a completion queued after this point signals again.
        self.signalled.store(false, Ordering::Release);
        std::mem::take(&mut *self.ready.lock())
    }
}

/// The promise to resolve one request's future. If the request task dies without delivering
/// (a bug, a panic), dropping this resolves the future with a 500 instead of leaving the
/// client waiting forever.
struct Delivery {
    notifier: Arc<Notifier>,
    surface: Surface,
    future: Option<Py<PyAny>>,
}

impl Delivery {
    fn deliver(mut self, reply: Reply) {
        if let Some(future) = self.future.take() {
            self.notifier.push(Completion::Reply(future, reply));
        }
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        if let Some(future) = self.future.take() {
            let error = GatewayError::new(
                ErrorKind::Internal,
                "The gateway failed to complete the request",
            );
            let reply = Reply::Complete(error_response(&error, &new_request_id(), self.surface));
            self.notifier.push(Completion::Reply(future, reply));
        }
    }
}

fn resolve(py: Python<'_>, future: &Py<PyAny>, value: Bound<'_, PyAny>) -> PyResult<()> {
    let future = future.bind(py);
    // A cancelled future (the request task went away) is simply left alone.
    if !future
        .call_method0(pyo3::intern!(py, "done"))?
        .is_truthy()?
    {
        future.call_method1(pyo3::intern!(py, "set_result"), (value,))?;
    }
    Ok(())
}

fn response_tuple(py: Python<'_>, r: core::Response) -> PyResult<Bound<'_, PyAny>> {
    Ok((r.status, r.headers, PyBytes::new(py, &r.body))
        .into_pyobject(py)?
        .into_any())
}

/// The data-plane engine: routing table, upstream pools, request flow.
#[pyclass(frozen, module = "muxgate._native")]
pub struct Engine {
    inner: Arc<core::Engine>,
    notifier: Arc<Notifier>,
}

#[pymethods]
impl Engine {
    #[new]
    fn new() -> PyResult<Self> {
        let inner = core::Engine::new().map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
        let notifier =
            Arc::new(Notifier::new().map_err(|e| PyRuntimeError::new_err(e.to_string()))?);
        let n = notifier.clone();
        inner.set_usage_notify(Arc::new(move || n.signal()));
        Ok(Self { inner, notifier })
    }

    /// File descriptor to watch for readability; call `drain()` when it fires.
    #[getter]
    fn wakeup_fd(&self) -> i32 {
        self.notifier.wakeup.fd()
    }

    #[getter]
    fn routing_version(&self) -> u64 {
        self.inner.routing_version()
    }

    /// The channel ids a request for `model` (`author/model[:provider]`) would try, in order,
    /// under the routing fields of `body` (a request's JSON, e.g. `{"provider": {...}}`).
    /// `repeat` makes the decision that many times and returns the last plan (benchmarks).
    /// Raises ValueError for an unknown model or invalid routing fields.
    #[pyo3(signature = (model, body = None, repeat = 1))]
    fn route(
        &self,
        py: Python<'_>,
        model: &str,
        body: Option<&[u8]>,
        repeat: u32,
    ) -> PyResult<Vec<String>> {
        py.detach(|| self.inner.route(model, body.unwrap_or(b"{}"), repeat))
            .map_err(PyValueError::new_err)
    }

    /// Keep rate-limit buckets in the Redis at `url`, shared by every worker using it (call
    /// before the first request; without it they live in this process's memory).
    fn use_redis_limits(&self, url: &str) {
        self.inner.use_redis_limits(url);
    }

    /// Swap in a routing snapshot (msgpack). Returns warnings; raises ValueError if unusable.
    #[pyo3(signature = (data, credentials = None))]
    fn load_snapshot(
        &self,
        py: Python<'_>,
        data: &[u8],
        credentials: Option<HashMap<String, String>>,
    ) -> PyResult<Vec<String>> {
        let credentials = credentials.unwrap_or_default();
        py.detach(|| self.inner.load_snapshot(data, &credentials))
            .map_err(PyValueError::new_err)
    }

    /// Start a Chat Completions request. `future` receives `(status, headers, body)` or a
    /// `Stream`.
    #[pyo3(signature = (authorization, api_key, body, future))]
    fn chat(
        &self,
        authorization: Option<&str>,
        api_key: Option<&str>,
        body: &[u8],
        future: Py<PyAny>,
    ) {
        self.start(
            Call::new(Surface::Chat),
            authorization,
            api_key,
            body,
            future,
        );
    }

    /// Start a Messages request, answered in Anthropic's format; `anthropic_beta` (the
    /// header's values, comma-joined) goes on to Messages providers. Like `chat` otherwise.
    #[pyo3(signature = (authorization, api_key, anthropic_beta, body, future))]
    fn messages(
        &self,
        authorization: Option<&str>,
        api_key: Option<&str>,
        anthropic_beta: Option<String>,
        body: &[u8],
        future: Py<PyAny>,
    ) {
        let call = Call {
            anthropic_beta,
            ..Call::new(Surface::Messages)
        };
        self.start(call, authorization, api_key, body, future);
    }

    /// Start a Responses request (`POST /v1/responses`); like `chat`.
    #[pyo3(signature = (authorization, api_key, body, future))]
    fn responses(
        &self,
        authorization: Option<&str>,
        api_key: Option<&str>,
        body: &[u8],
        future: Py<PyAny>,
    ) {
        self.start(
            Call::new(Surface::Responses),
            authorization,
            api_key,
            body,
            future,
        );
    }

    /// Start a Gemini `generateContent` (`stream` false) or `streamGenerateContent` request for
    /// the model its path names; `sse` is the client's `alt=sse`. Like `chat` otherwise.
    #[pyo3(signature = (model, stream, sse, authorization, api_key, body, future))]
    #[allow(clippy::too_many_arguments)] // the path's three facts, then chat's four
    fn generate_content(
        &self,
        model: &str,
        stream: bool,
        sse: bool,
        authorization: Option<&str>,
        api_key: Option<&str>,
        body: &[u8],
        future: Py<PyAny>,
    ) {
        let call = Call {
            path_model: model.to_owned(),
            ..Call::new(Surface::Gemini { stream, sse })
        };
        self.start(call, authorization, api_key, body, future);
    }

    /// `POST /v1/messages/count_tokens`: the local count of a Messages request's input.
    #[pyo3(signature = (authorization, api_key, body))]
    fn count_tokens<'py>(
        &self,
        py: Python<'py>,
        authorization: Option<&str>,
        api_key: Option<&str>,
        body: &[u8],
    ) -> PyResult<Bound<'py, PyAny>> {
        let response = py.detach(|| self.inner.count_tokens(authorization, api_key, body));
        response_tuple(py, response)
    }

    /// `GET /models` for a key, in the OpenAI (`"openai"`) or Anthropic (`"anthropic"`) list
    /// shape: `(status, headers, body)`.
    #[pyo3(signature = (authorization, api_key, protocol = "openai"))]
    fn models<'py>(
        &self,
        py: Python<'py>,
        authorization: Option<&str>,
        api_key: Option<&str>,
        protocol: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let surface = match protocol {
            "openai" => Surface::Chat,
            "anthropic" => Surface::Messages,
            "gemini" => Surface::Gemini {
                stream: false,
                sse: false,
            },
            other => return Err(PyValueError::new_err(format!("unknown protocol {other:?}"))),
        };
        response_tuple(py, self.inner.models(surface, authorization, api_key))
    }

    /// Resolve every future whose work finished since the last call.
    fn drain(&self, py: Python<'_>) -> PyResult<()> {
        for completion in self.notifier.take() {
            match completion {
                Completion::Reply(future, Reply::Complete(response)) => {
                    resolve(py, &future, response_tuple(py, response)?)?;
                }
                Completion::Reply(future, Reply::Stream { headers, buffer }) => {
                    let stream = Stream {
                        headers,
                        buffer,
                        notifier: self.notifier.clone(),
                    };
                    resolve(py, &future, Bound::new(py, stream)?.into_any())?;
                }
                Completion::Wake(future) => resolve(py, &future, py.None().into_bound(py))?,
            }
        }
        Ok(())
    }

    /// Usage events finished since the last call, one JSON line each (None if there are none).
    fn take_usage<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        let lines = self.inner.take_usage();
        (!lines.is_empty()).then(|| PyBytes::new(py, &lines))
    }
}

impl Engine {
    fn start(
        &self,
        call: Call,
        authorization: Option<&str>,
        api_key: Option<&str>,
        body: &[u8],
        future: Py<PyAny>,
    ) {
        let delivery = Delivery {
            notifier: self.notifier.clone(),
            surface: call.surface,
            future: Some(future),
        };
        self.inner.chat(
            call,
            authorization,
            api_key,
            body.to_vec(),
            Box::new(move |reply| delivery.deliver(reply)),
        );
    }
}

/// An event stream being relayed: read what is buffered, or wait for more.
#[pyclass(frozen, module = "muxgate._native")]
pub struct Stream {
    headers: Headers,
    buffer: Arc<StreamBuffer>,
    notifier: Arc<Notifier>,
}

#[pymethods]
impl Stream {
    #[getter]
    fn headers(&self) -> Headers {
        self.headers.clone()
    }

    /// Buffered bytes; `b""` once the stream has ended; None if nothing is there yet.
    fn read<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        match self.buffer.read() {
            Read::Data(d) => Some(PyBytes::new(py, &d)),
            Read::Ended => Some(PyBytes::new(py, b"")),
            Read::Pending => None,
        }
    }

    /// Resolve `future` (with None) when there is something to read.
    fn wait(&self, py: Python<'_>, future: &Bound<'_, PyAny>) -> PyResult<()> {
        let parked = future.clone().unbind();
        let notifier = self.notifier.clone();
        let waker = Box::new(move || notifier.push(Completion::Wake(parked)));
        if self.buffer.wait(waker).is_some() {
            resolve(py, &future.clone().unbind(), py.None().into_bound(py))?;
        }
        Ok(())
    }

    /// The client went away: stop the upstream request now.
    fn cancel(&self) {
        self.buffer.cancel();
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        // Abandoned without reaching the end: nobody will read the rest.
        if !matches!(self.buffer.read(), Read::Ended) {
            self.buffer.cancel();
        }
    }
}
