"""Run processes under granian: gateway workers (RSGI, uvloop) import
`muxgate.gateway.app:app`, the control plane (ASGI) `muxgate.control.server:app`; both read
their settings from the environment set here."""

from __future__ import annotations

import asyncio
import copy
import os
import signal
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any, NamedTuple

from granian import Granian
from granian.constants import HTTPModes, Interfaces, Loops, SSLProtocols
from granian.log import LOGGING_CONFIG


def logging_config() -> dict[str, Any]:
    """Granian's logging plus ours: without a handler of their own, the `muxgate.*` loggers of a
    worker would only show warnings (through logging's last resort), and lose the INFO lines an
    operator follows an outage by (snapshots loaded, usage spilled and replayed)."""
    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["muxgate"] = {
        "()": "logging.Formatter",
        "fmt": "%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s",
    }
    config["handlers"]["muxgate"] = {
        "formatter": "muxgate",
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
    }
    config["loggers"]["muxgate"] = {"handlers": ["muxgate"], "level": "INFO", "propagate": False}
    return config


class TLS(NamedTuple):
    """A PEM certificate (chain) and its private key: the listener serves HTTPS."""

    cert: Path
    key: Path

    @classmethod
    def of(cls, cert: str | None, key: str | None) -> TLS | None:
        """From the two paths (both or neither); ValueError saying what is wrong with them."""
        if cert is None and key is None:
            return None
        if cert is None or key is None:
            raise ValueError("HTTPS needs both a certificate and its key (--tls-cert, --tls-key)")
        tls = cls(Path(cert).resolve(), Path(key).resolve())
        try:
            # Loaded here so a wrong file is one line at start-up, not a worker's traceback.
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(tls.cert, tls.key)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"cannot use {tls.cert} with {tls.key}: {exc}") from None
        return tls


def _stop_starting_worker(signum: int, frame: FrameType | None) -> None:
    os._exit(0)  # nothing is served yet; usage and the store are safe from a kill anyway


def _starting_signals() -> None:
    """How a worker that is not serving yet takes signals: SIGTERM (its main process stopping
    it) ends it at once; SIGINT (a Ctrl-C, which the main process also gets and answers with
    SIGTERM) is left to the main process. Without this a worker keeps the handlers its fork
    inherited from granian's main process, which swallow both, and a shutdown requested while
    it starts waits for it forever."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _stop_starting_worker)


@contextmanager
def starting(loop: asyncio.AbstractEventLoop) -> Iterator[None]:
    """Around a worker's own start-up (`__rsgi_init__`): ours stand in for granian's handlers
    until the worker's event loop runs. uvloop hears a signal only while its loop runs (its
    wake-up descriptor is set then), and granian starts that loop only after its server: a stop
    signal arriving before would be lost, and the worker would never stop. So granian's
    handlers come back from a callback of that loop, once it runs."""
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    _starting_signals()

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)

    try:
        yield
    finally:
        loop.call_soon(restore)


WORKERS_KILL_TIMEOUT_S = 30
"""A worker still running this long after its main process asked it to stop is killed: a
shutdown must never hang on one worker. Usage is journaled before answers leave, so a kill
loses no answered request."""


def _serve(
    target: str, interface: Interfaces, *, host: str, port: int, workers: int, tls: TLS | None
) -> None:
    os.register_at_fork(after_in_child=_starting_signals)
    Granian(
        target,
        address=host,
        port=port,
        interface=interface,
        workers=workers,
        workers_kill_timeout=WORKERS_KILL_TIMEOUT_S,
        loop=Loops.uvloop,
        http=HTTPModes.http1,
        log_access=False,
        log_dictconfig=logging_config(),
        ssl_cert=tls.cert if tls else None,
        ssl_key=tls.key if tls else None,
        ssl_protocol_min=SSLProtocols.tls12,
    ).serve()


def run_gateway(
    *,
    env: dict[str, str],
    host: str,
    port: int,
    workers: int,
    max_body_bytes: int,
    tls: TLS | None = None,
) -> None:
    os.environ.update(env)
    os.environ["MUXGATE_MAX_BODY_BYTES"] = str(max_body_bytes)
    _serve(
        "muxgate.gateway.app:app", Interfaces.RSGI, host=host, port=port, workers=workers, tls=tls
    )


def run_control(*, env: dict[str, str], host: str, port: int, tls: TLS | None = None) -> None:
    os.environ.update(env)
    # One process: it is the only writer of the store and the single metering consumer here.
    _serve("muxgate.control.server:app", Interfaces.ASGI, host=host, port=port, workers=1, tls=tls)
