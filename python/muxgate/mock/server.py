"""Starting the mock provider in-process (tests, the embedded demo) or as a blocking command
(`muxgate mock-provider`)."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from muxgate._native import MockProvider
from muxgate.mock.config import MockConfig, MockStats, decode_stats, encode_config, load_config


def start(
    config: MockConfig | None = None, host: str = "127.0.0.1", port: int = 0, threads: int = 1
) -> MockProvider:
    """Serve on a background thread; returns once listening (`port=0` picks a free port)."""
    return MockProvider(encode_config(config or MockConfig()), host, port, threads)


def read_stats(provider: MockProvider) -> MockStats:
    return decode_stats(provider.stats())


def run(
    config_path: str | Path | None = None,
    host: str = "127.0.0.1",
    port: int = 9090,
    threads: int = 1,
    config: MockConfig | None = None,
) -> None:
    """Serve until SIGINT or SIGTERM. `config` wins over `config_path`; neither means defaults."""
    if config is None:
        config = load_config(config_path) if config_path is not None else MockConfig()
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with start(config, host, port, threads) as provider:
            url = provider.base_url
            print(f"muxgate mock provider listening on {url}", file=sys.stderr, flush=True)
            while not stop.wait(1.0):
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
