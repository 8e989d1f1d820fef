//! Token counting for Python: the same exact counts the engine meters with.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::tokens::{Encoding, count_chat_messages};

fn encoding(name: &str) -> PyResult<Encoding> {
    Encoding::from_name(name).ok_or_else(|| {
        PyValueError::new_err(format!(
            "unknown encoding {name:?}: use o200k_base or cl100k_base"
        ))
    })
}

/// Tokens in `text` (special tokens counted as text).
#[pyfunction]
#[pyo3(signature = (text, encoding_name = "o200k_base"))]
pub fn count_tokens(py: Python<'_>, text: &str, encoding_name: &str) -> PyResult<usize> {
    let enc = encoding(encoding_name)?;
    Ok(py.detach(|| enc.count(text)))
}

/// Prompt tokens of an OpenAI `messages` array given as JSON, chat framing included.
#[pyfunction]
#[pyo3(signature = (messages_json, encoding_name = "o200k_base"))]
pub fn count_chat_tokens(
    py: Python<'_>,
    messages_json: &[u8],
    encoding_name: &str,
) -> PyResult<usize> {
    let enc = encoding(encoding_name)?;
    let messages: Vec<serde_json::Value> = serde_json::from_slice(messages_json)
        .map_err(|e| PyValueError::new_err(format!("messages must be a JSON array: {e}")))?;
    Ok(py.detach(|| count_chat_messages(enc, &messages)))
}

/// The encoding OpenAI uses for `model` (o200k_base for unknown models, as an estimate).
#[pyfunction]
pub fn encoding_for_model(model: &str) -> &'static str {
    Encoding::for_model(model).name()
}
