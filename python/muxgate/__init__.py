"""muxgate: a self-hosted AI model gateway. The hot path lives in the native `_native`
module; this package is the typed glue around it."""

from muxgate._native import VERSION as __version__
from muxgate._native import Engine, Stream

__all__ = ["Engine", "Stream", "__version__"]
