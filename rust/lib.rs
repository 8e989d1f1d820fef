//! muxgate's hot path. Plain Rust: every module compiles and tests without Python;
//! `py` (behind the `python` feature) is the only place that knows about PyO3.

pub mod client;
pub mod engine;
pub mod health;
pub mod insurance;
pub mod json;
pub mod limits;
pub mod mock;
pub mod relay;
pub mod select;
pub mod snapshot;
pub mod sse;
pub mod tokens;
pub mod translate;

#[cfg(feature = "python")]
mod py;
