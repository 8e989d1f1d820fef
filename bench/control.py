"""Control-plane benchmark: snapshot propagation to gateways and metering consumer throughput on
SQLite and PostgreSQL, all on 127.0.0.1. (The gateway's own cost with Redis metering is
bench/run.py's `muxgate` target.)

Starts a private redis-server, `muxgate control` processes and `muxgate gateway --redis`
workers, prints one markdown table per figure and stops every process it started by PID.
See bench/README.md, section "Control plane".

Run: `make bench-control` or `.venv/bin/python bench/control.py [--quick] [--output FILE]`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import control_consumer
import control_propagation
from control_stack import pg_version, start_redis
from procs import BenchError, Services, run_main
from run import VENV_BIN, cpu_model, package_version, tool_version

PARTS = ("propagation", "consumer")
BACKENDS = ("sqlite", "postgresql")
POLL_INTERVAL_S = 0.001
PROPAGATION_TIMEOUT_S = 5.0
CONSUMER_CAP_S = 300.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run (~1 minute)")
    parser.add_argument(
        "--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}"
    )
    parser.add_argument(
        "--gateways", default="1,2,4", help="gateway counts for propagation (default 1,2,4)"
    )
    parser.add_argument(
        "--changes", type=int, help="measured changes per gateway count (default 20, --quick 10)"
    )
    parser.add_argument(
        "--events", type=int, help="usage events per store (default 50000, --quick 10000)"
    )
    parser.add_argument(
        "--events-per-entry", type=int, default=100, help="usage events per stream entry"
    )
    parser.add_argument(
        "--backends",
        default=",".join(BACKENDS),
        help=f"stores for the consumer, subset of {','.join(BACKENDS)}",
    )
    parser.add_argument("--output", type=Path, help="also write the markdown report here")
    parser.add_argument("--json", type=Path, help="also write the raw numbers here as JSON")
    parser.add_argument(
        "--muxgate", type=Path, default=VENV_BIN / "muxgate", help="muxgate executable"
    )
    parser.add_argument("--keep-workdir", action="store_true", help="keep configs and logs")
    args = parser.parse_args(argv)
    for option, allowed in (("parts", PARTS), ("backends", BACKENDS)):
        chosen = [x for x in getattr(args, option).split(",") if x]
        if set(chosen) - set(allowed) or not chosen:
            parser.error(f"--{option}: choose from {','.join(allowed)}")
        setattr(args, option, [x for x in allowed if x in chosen])
    try:
        args.gateways = [int(x) for x in args.gateways.split(",") if x]
    except ValueError:
        parser.error("--gateways: comma-separated counts, e.g. 1,2,4")
    if not args.gateways or min(args.gateways) < 1:
        parser.error("--gateways: counts of at least 1")
    args.changes = args.changes or (10 if args.quick else 20)
    args.events = args.events or (10_000 if args.quick else 50_000)
    if args.events_per_entry < 1:
        parser.error("--events-per-entry: at least 1")
    return args


def environment_lines(args: argparse.Namespace, load: tuple[float, ...]) -> list[str]:
    versions = [
        f"muxgate {package_version('muxgate')}",
        f"granian {package_version('granian')}",
        f"Python {platform.python_version()}",
        tool_version(["redis-server", "--version"]).split(" sha=")[0],
    ]
    if "postgresql" in args.backends and "consumer" in args.parts:
        versions.append(f"PostgreSQL {pg_version()}")
    return [
        f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {os.cpu_count()} CPUs, {cpu_model()}, Linux {platform.release()}",
        "- " + ", ".join(versions),
        "- load average before the run: " + " / ".join(f"{x:.2f}" for x in load),
        "- every process on 127.0.0.1: one redis-server, `muxgate control` (granian, 1 process), "
        "`muxgate gateway --redis --workers 1` per gateway",
    ]


def without_nan(value: object) -> object:
    """JSON has no NaN: a change never seen (timed out) becomes null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: without_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_nan(v) for v in value]
    return value


def run(args: argparse.Namespace) -> int:
    if not args.muxgate.exists():
        raise BenchError(f"{args.muxgate} not found; run `make build` first")
    workdir = Path(tempfile.mkdtemp(prefix="muxgate-bench-control-"))
    services = Services(workdir)
    started, load = time.monotonic(), os.getloadavg()
    propagation: list[control_propagation.Propagation] = []
    consumer: list[control_consumer.Throughput] = []
    try:
        redis_proc = start_redis(services, workdir)
        if "propagation" in args.parts:
            print(f"· propagation, gateways {args.gateways} ...", file=sys.stderr)
            propagation = control_propagation.measure(
                services,
                args.muxgate,
                redis_proc,
                counts=args.gateways,
                changes=args.changes,
                interval=POLL_INTERVAL_S,
                timeout=PROPAGATION_TIMEOUT_S,
            )
        if "consumer" in args.parts:
            consumer = control_consumer.measure(
                services,
                args.muxgate,
                redis_proc,
                backends=args.backends,
                events=args.events,
                per_entry=args.events_per_entry,
                cap_s=CONSUMER_CAP_S,
            )
    finally:
        services.stop_all()
        if args.keep_workdir:
            print(f"configs and logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    lines = ["## muxgate control plane", "", *environment_lines(args, load), ""]
    if propagation:
        lines += control_propagation.table(propagation, POLL_INTERVAL_S, PROPAGATION_TIMEOUT_S)
    if consumer:
        lines += control_consumer.table(consumer, args.events_per_entry, CONSUMER_CAP_S)
    lines.append(f"Total run time {time.monotonic() - started:.0f}s.")
    report = "\n".join(lines) + "\n"
    print(report)
    if args.output:
        args.output.write_text(report)
    if args.json:
        raw: dict[str, object] = {
            "propagation": [asdict(r) for r in propagation],
            "consumer": [asdict(r) for r in consumer],
        }
        args.json.write_text(json.dumps(without_nan(raw), indent=2) + "\n")
    failed = sum(r.failures for r in propagation) + sum(not r.complete for r in consumer)
    if failed:
        print(f"warning: {failed} failed measurements", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_main(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
