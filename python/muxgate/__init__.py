"""muxgate: a self-hosted AI model gateway. The hot path lives in the native `_native`
module; this package is the typed glue around it."""

from muxgate._native import VERSION as __version__
from muxgate._native import (
    Engine,
    Stream,
    count_chat_tokens,
    count_tokens,
    encoding_for_model,
)

__all__ = [
    "Engine",
    "Stream",
    "__version__",
    "count_chat_tokens",
    "count_tokens",
    "encoding_for_model",
]
