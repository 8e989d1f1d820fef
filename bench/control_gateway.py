"""Gateway with Redis metering: bench/run.py's non-streaming JSON case for `muxgate gateway
--redis` (1 worker) fed by a running `muxgate control`, next to nginx `proxy_pass` and `muxgate
serve` (embedded) started and measured in the same run, all with bench/run.py's own machinery.

The Redis gateway's process tree does not include metering's writes (the control plane does
them), while embedded `muxgate serve` does them in its own process; so the control plane's and
redis-server's CPU per recorded usage event is reported beside it, and added for the total."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import redis

import run
from control_stack import (
    RedisProc,
    StoreCounter,
    import_config,
    start_control,
    start_gateway,
    stream_state,
)
from run import CASES, TIMES, BenchError, Measurement, Services, Settings, Target, cpu_seconds

REDIS_DB = 3
TARGETS = ("nginx", "muxgate", "redis")
TITLES = {
    "nginx": "nginx proxy_pass",
    "muxgate": "muxgate serve (embedded)",
    "redis": "muxgate gateway --redis + control",
}
DRAIN_CAP_S = 60.0


@dataclass
class Metering:
    """What the control plane did for the Redis gateway's requests over its measurement."""

    recorded: int = 0
    backend_cpu_s: float = 0.0
    # Seconds from wrk's end until the stream was delivered and acknowledged (None: not within
    # DRAIN_CAP_S).
    drain_s: float | None = None

    @property
    def cpu_us_per_event(self) -> float:
        return self.backend_cpu_s * 1e6 / self.recorded if self.recorded else 0.0


def wait_drained(client: redis.Redis, cap_s: float) -> float | None:
    """Seconds until every usage entry was delivered and acknowledged, None after `cap_s`."""
    started = time.monotonic()
    while time.monotonic() - started < cap_s:
        if stream_state(client).drained:
            return time.monotonic() - started
        time.sleep(0.01)
    return None


def measure(
    services: Services,
    muxgate: Path,
    nginx: str,
    redis_proc: RedisProc,
    settings: Settings,
) -> tuple[dict[str, Measurement], Metering]:
    workdir = services.workdir
    mock, targets = run.start_targets(
        services,
        argparse.Namespace(targets=["mock", "nginx", "muxgate"], muxgate=muxgate),
        nginx,
        workdir,
    )
    database = f"sqlite:///{workdir / 'metered.db'}"
    toml = run.muxgate_toml(targets["mock"].port)
    import_config(muxgate, toml, workdir / "metered.toml", database)
    redis_url = redis_proc.url(REDIS_DB)
    control = start_control(services, muxgate, "metered-control", database, redis_url)
    gateway = start_gateway(services, muxgate, "metered-gateway", redis_url)
    targets["redis"] = Target(
        "redis", gateway.service, gateway.port, "/api/v1/chat/completions", "bench/", ("json",)
    )
    case = CASES["json"]
    rows: dict[str, Measurement] = {}
    metering = Metering()
    client = redis_proc.client(REDIS_DB)
    counter = StoreCounter(database)
    try:
        for name in TARGETS:
            target = targets[name]
            print(f"· json  {name:7} c=32 ...", end="", flush=True, file=sys.stderr)
            if name != "redis":
                rows[name] = run.measure_load(target, case, services, mock, settings)
            else:
                wait_drained(client, DRAIN_CAP_S)
                count = counter.count()
                backend = cpu_seconds(control.service.pid) + cpu_seconds(redis_proc.service.pid)
                rows[name] = run.measure_load(target, case, services, mock, settings)
                metering.drain_s = wait_drained(client, DRAIN_CAP_S)
                metering.recorded = counter.count() - count
                metering.backend_cpu_s = (
                    cpu_seconds(control.service.pid) + cpu_seconds(redis_proc.service.pid)
                ) - backend
                # Drained but short of the completed requests: usage was lost, not just late.
                if metering.drain_s is not None and metering.recorded < rows[name].requests_c32:
                    raise BenchError(
                        f"the control plane recorded {metering.recorded} usage events for "
                        f"{rows[name].requests_c32} completed requests:\n"
                        f"{control.service.log_tail()}"
                    )
            row = rows[name]
            print(
                f" {row.rps_c32:8,.0f} req/s  {row.cpu_us_per_req:7.1f} µs CPU/req  "
                f"(other load {row.other_cpu_pct:.0f}% of a core)",
                file=sys.stderr,
            )
    finally:
        counter.close()
        client.close()
    return rows, metering


# --------------------------------------------------------------------------- report


def table(rows: dict[str, Measurement], metering: Metering, settings: Settings) -> list[str]:
    lines = [
        "### Gateway with Redis metering: (a) non-streaming JSON",
        "",
        f"wrk: warm-up {settings.warmup_s}s, then {settings.c32_s}s at `-t2 -c32` per target; "
        "CPU µs/req is the target's process tree over the measured run.",
        "",
        f"| target | req/s @32 | CPU µs/req | {TIMES} nginx | metering CPU µs/req "
        f"(control + Redis) | total CPU µs/req | total {TIMES} nginx |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    nginx = rows.get("nginx")
    base = nginx.cpu_us_per_req if nginx and nginx.cpu_us_per_req > 0 else None

    def ratio(value: float) -> str:
        return f"{value / base:.2f}{TIMES}" if base else "—"

    for name in TARGETS:
        row = rows.get(name)
        if row is None:
            lines.append(f"| {TITLES[name]} | " + " | ".join(["n/a"] * 6) + " |")
            continue
        extra = 0.0
        if name == "redis":
            extra = metering.cpu_us_per_event
            meter = f"{extra:.1f}"
        else:
            meter = "in process" if name == "muxgate" else "—"
        total = row.cpu_us_per_req + extra
        flag = f" ⚠ {row.errors} errors" if row.errors else ""
        cells = [
            f"{row.rps_c32:,.0f}",
            run.fmt_us(row.cpu_us_per_req),
            ratio(row.cpu_us_per_req),
            meter,
            run.fmt_us(total),
            ratio(total),
        ]
        lines.append(f"| {TITLES[name]}{flag} | " + " | ".join(cells) + " |")
    mock_costs = ", ".join(
        f"{TITLES[n]} {run.fmt_us(r.mock_cpu_us_per_req)}" for n, r in rows.items()
    )
    other = max((r.other_cpu_pct for r in rows.values()), default=0.0)
    drain = (
        f"{metering.drain_s:.2f} s"
        if metering.drain_s is not None
        else f"more than {DRAIN_CAP_S:g} s"
    )
    lines += [
        "",
        f"Mock provider CPU µs/req during the c=32 runs: {mock_costs}.",
        "",
        f"The control plane recorded {metering.recorded:,} usage events over the Redis "
        "gateway's warm-up and measured run (wrk completed "
        f"{rows['redis'].requests_c32:,} in the measured run); the stream was drained "
        f"{drain} after the load stopped."
        if "redis" in rows
        else "",
        "",
        f"Other processes on the machine used at most {other:.0f}% of one core during these "
        "c=32 runs" + (" (busy machine: treat these numbers with care)." if other > 10 else "."),
        "",
    ]
    return lines
