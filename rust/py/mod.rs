//! The PyO3 layer: everything that crosses into Python is listed here, in `_native`.
//! Each submodule wraps one core module; the core itself never sees Python.

use pyo3::prelude::*;

mod engine;
mod mock;
mod tokens;
mod wakeup;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[pymodule(gil_used = false)]
mod _native {
    #[pymodule_export]
    const VERSION: &str = env!("CARGO_PKG_VERSION");

    #[pymodule_export]
    use super::engine::{Engine, Stream};

    #[pymodule_export]
    use super::mock::MockProvider;

    #[pymodule_export]
    use super::tokens::{count_chat_tokens, count_tokens, encoding_for_model};
}
