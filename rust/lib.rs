//! muxgate's hot path. Plain Rust: every module compiles and tests without Python;
//! `py` (behind the `python` feature) is the only place that knows about PyO3.

pub mod health;
pub mod select;
pub mod sse;
pub mod tokens;

#[cfg(feature = "python")]
mod py;
