"""The mock provider: a native HTTP server speaking the Chat Completions, Anthropic Messages and
Gemini protocols, scripted per model, used by the tests, the embedded demo and the benchmarks
instead of real provider APIs."""

from muxgate._native import MockProvider
from muxgate.mock.config import (
    MockConfig,
    MockScript,
    MockStats,
    MockToolCall,
    decode_stats,
    encode_config,
    load_config,
)
from muxgate.mock.server import read_stats, run, start

__all__ = [
    "MockConfig",
    "MockProvider",
    "MockScript",
    "MockStats",
    "MockToolCall",
    "decode_stats",
    "encode_config",
    "load_config",
    "read_stats",
    "run",
    "start",
]
