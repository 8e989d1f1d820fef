//! `MockProvider`: the mock provider (OpenAI, Anthropic and Gemini APIs), started from Python
//! for tests, the embedded demo and benchmarks. Config and stats cross as JSON so the Python
//! side can mirror them with msgspec without a second schema here.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

use parking_lot::Mutex;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::mock::{MockConfig, MockServer};

#[pyclass(frozen, module = "muxgate._native")]
pub struct MockProvider {
    addr: SocketAddr,
    /// `None` once stopped.
    server: Mutex<Option<MockServer>>,
}

impl MockProvider {
    fn with_server<T>(&self, f: impl FnOnce(&MockServer) -> T) -> PyResult<T> {
        match self.server.lock().as_ref() {
            Some(server) => Ok(f(server)),
            None => Err(PyRuntimeError::new_err("mock provider is stopped")),
        }
    }
}

fn parse_config(config_json: &str) -> PyResult<MockConfig> {
    MockConfig::from_json(config_json).map_err(|e| PyValueError::new_err(e.to_string()))
}

#[pymethods]
impl MockProvider {
    /// Starts serving before returning; `port=0` picks a free port.
    #[new]
    #[pyo3(signature = (config_json, host = "127.0.0.1", port = 0, threads = 1))]
    fn new(
        py: Python<'_>,
        config_json: &str,
        host: &str,
        port: u16,
        threads: usize,
    ) -> PyResult<Self> {
        let config = parse_config(config_json)?;
        let server = py.detach(|| {
            let addr = (host, port).to_socket_addrs()?.next().ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::AddrNotAvailable,
                    format!("no address for {host:?}"),
                )
            })?;
            MockServer::start(addr, config, threads)
        })?;
        Ok(MockProvider {
            addr: server.local_addr(),
            server: Mutex::new(Some(server)),
        })
    }

    #[getter]
    fn host(&self) -> String {
        self.addr.ip().to_string()
    }

    #[getter]
    fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Base URL for an `openai` SDK client or a channel, e.g. `http://127.0.0.1:8123/v1`.
    #[getter]
    fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Replaces the scripts of the running server.
    fn set_config(&self, config_json: &str) -> PyResult<()> {
        let config = parse_config(config_json)?;
        self.with_server(|server| server.set_config(config))?
            .map_err(|e| PyValueError::new_err(e.to_string()))
    }

    /// The current config as JSON.
    fn config(&self) -> PyResult<String> {
        self.with_server(|server| server.config().to_json())
    }

    /// Counters since start, as JSON (see `muxgate.mock.MockStats`).
    fn stats(&self) -> PyResult<String> {
        self.with_server(|server| serde_json::to_string(&server.stats()).expect("stats serialize"))
    }

    /// Stops the server and closes its connections. Idempotent.
    fn stop(&self, py: Python<'_>) {
        let server = self.server.lock().take();
        py.detach(move || drop(server));
    }

    #[getter]
    fn running(&self) -> bool {
        self.server.lock().is_some()
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) {
        self.stop(py);
    }

    fn __repr__(&self) -> String {
        format!(
            "MockProvider(base_url={:?}, running={})",
            self.base_url(),
            self.running()
        )
    }
}
