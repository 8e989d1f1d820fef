"""Run processes under granian: gateway workers (RSGI, uvloop) import
`muxgate.gateway.app:app`, the control plane (ASGI) `muxgate.control.server:app`; both read
their settings from the environment set here."""

from __future__ import annotations

import os

from granian import Granian
from granian.constants import HTTPModes, Interfaces, Loops


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
