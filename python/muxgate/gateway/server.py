"""Run processes under granian: gateway workers (RSGI, uvloop) import
`muxgate.gateway.app:app`, the control plane (ASGI) `muxgate.control.server:app`; both read
their settings from the environment set here."""

from __future__ import annotations

import copy
import os
from typing import Any

from granian import Granian
from granian.constants import HTTPModes, Interfaces, Loops
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


def _serve(target: str, interface: Interfaces, host: str, port: int, workers: int) -> None:
    Granian(
        target,
        address=host,
        port=port,
        interface=interface,
        workers=workers,
        loop=Loops.uvloop,
        http=HTTPModes.http1,
        log_access=False,
        log_dictconfig=logging_config(),
    ).serve()


def run_gateway(
    *, env: dict[str, str], host: str, port: int, workers: int, max_body_bytes: int
) -> None:
    os.environ.update(env)
    os.environ["MUXGATE_MAX_BODY_BYTES"] = str(max_body_bytes)
    _serve("muxgate.gateway.app:app", Interfaces.RSGI, host, port, workers)


def run_control(*, env: dict[str, str], host: str, port: int) -> None:
    os.environ.update(env)
    # One process: it is the only writer of the store and the single metering consumer here.
    _serve("muxgate.control.server:app", Interfaces.ASGI, host, port, 1)
