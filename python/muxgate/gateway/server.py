"""Run gateway workers under granian (RSGI, uvloop). Workers import `muxgate.gateway.app:app`,
which reads its snapshot and usage sink from the environment set here."""

from __future__ import annotations

import os
from pathlib import Path

from granian import Granian
from granian.constants import HTTPModes, Interfaces, Loops


def run(
    *,
    snapshot_path: Path,
    usage_log: Path,
    host: str,
    port: int,
    workers: int,
    max_body_bytes: int,
) -> None:
    os.environ["MUXGATE_SNAPSHOT"] = str(snapshot_path)
    os.environ["MUXGATE_USAGE_LOG"] = str(usage_log)
    os.environ["MUXGATE_MAX_BODY_BYTES"] = str(max_body_bytes)
    Granian(
        "muxgate.gateway.app:app",
        address=host,
        port=port,
        interface=Interfaces.RSGI,
        workers=workers,
        loop=Loops.uvloop,
        http=HTTPModes.http1,
        log_access=False,
    ).serve()
