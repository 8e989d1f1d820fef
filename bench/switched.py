"""What a feature costs: gateway CPU per request with it switched on, then off, in one run on
one stack. `--feature insurance` switches every enabled insurance rule (the default set, seeded
by the store); `--feature limits` switches a rate-limit policy on the bench account (requests
and tokens per minute high enough never to refuse, so every request goes through admission:
Redis buckets, leased locally).

Starts the stack of `run.py`'s `muxgate gateway` target (mock provider, redis-server, `muxgate
control` over SQLite, `muxgate gateway` with one worker) and measures the JSON and the burst
SSE cases at c=32 with wrk in alternating rounds, each switch going through the admin API and
waiting until the gateway serves the new routing snapshot. Each side goes first every other
round (ABBA), so that drift over the run and the order within a round fall on both sides.
Prints the median CPU µs/request of each side and their ratio; targets: 1.05 for insurance,
1.15 for limits. Every process is stopped by PID on exit.

Run: `.venv/bin/python bench/switched.py --feature insurance|limits [--rounds 4] [--duration 6]`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from control_stack import (
    admin_request,
    import_config,
    start_control,
    start_gateway,
    start_redis,
)
from procs import ROOT, BenchError, Services, free_port, http_request, run_main, wait_ready
from run import (
    CASES,
    TIMES,
    MeteringBackend,
    Settings,
    Target,
    measure_load,
    mock_toml,
    muxgate_toml,
    top_up,
)

RULES = "/admin/v1/insurance-rules"
POLICIES = "/admin/v1/rate-limit-policies"
GOALS = {"insurance": 1.05, "limits": 1.15}
# Never refuses the bench: a billion requests and a trillion tokens a minute.
BENCH_LIMITS = {
    "id": "bench-limits",
    "applies_to": "account",
    "subjects": ["bench"],
    "rpm": 1_000_000_000,
    "tpm": 1_000_000_000_000,
}


def routing_version(port: int) -> int:
    status, body = http_request(port, "GET", "/healthz", None, timeout=5)
    if status != 200:
        raise BenchError(f"gateway health: HTTP {status}: {body[:200]!r}")
    return int(json.loads(body)["routing_version"])


def switched_items(control_port: int, feature: str) -> list[str]:
    """The admin paths switched on and off: every enabled insurance rule, or the bench policy."""
    if feature == "limits":
        status, body = admin_request(control_port, "POST", POLICIES, BENCH_LIMITS)
        if status != 201:
            raise BenchError(f"POST {POLICIES}: HTTP {status}: {body[:300]!r}")
        return [f"{POLICIES}/{BENCH_LIMITS['id']}"]
    status, body = admin_request(control_port, "GET", RULES)
    if status != 200:
        raise BenchError(f"GET {RULES}: HTTP {status}: {body[:300]!r}")
    items = [f"{RULES}/{r['id']}" for r in json.loads(body) if r["enabled"]]
    if not items:
        raise BenchError("no enabled insurance rule to measure")
    return items


def switch(control_port: int, gateway_port: int, items: list[str], on: bool) -> None:
    """Enable or disable the items, then wait until the gateway routes with that snapshot."""
    before = routing_version(gateway_port)
    for path in items:
        status, body = admin_request(control_port, "PATCH", path, {"enabled": on})
        if status != 200:
            raise BenchError(f"PATCH {path}: HTTP {status}: {body[:300]!r}")
    deadline = time.monotonic() + 30
    while routing_version(gateway_port) <= before:
        if time.monotonic() > deadline:
            raise BenchError("the gateway never received the snapshot with the switch")
        time.sleep(0.05)


def run(args: argparse.Namespace) -> int:
    if shutil.which("wrk") is None:
        raise BenchError("wrk not found; install it (Debian: apt-get install -y wrk)")
    if not args.muxgate.exists():
        raise BenchError(f"{args.muxgate} not found; run `make build` first")
    settings = Settings(
        warmup_s=args.warmup,
        c32_s=args.duration,
        c1_s=0,
        latency_rounds=0,
        rss_requests=0,
        rss_cap_s=0,
    )
    workdir = Path(tempfile.mkdtemp(prefix=f"muxgate-bench-{args.feature}-"))
    services = Services(workdir)
    cpu: dict[tuple[str, bool], list[float]] = {}
    started = time.monotonic()
    try:
        mock_port = free_port()
        (workdir / "mock.toml").write_text(mock_toml())
        argv = [str(args.muxgate), "mock-provider", "--host", "127.0.0.1", "--port"]
        argv += [str(mock_port), "--config", str(workdir / "mock.toml"), "--threads", "1"]
        mock = services.start("mock", argv)
        wait_ready(mock, mock_port, method="GET", path="/mock/config", body=None)
        redis_proc = start_redis(services, workdir)
        database = f"sqlite:///{workdir / 'control.db'}"
        import_config(args.muxgate, muxgate_toml(mock_port), workdir / "control.toml", database)
        control = start_control(services, args.muxgate, "control", database, redis_proc.url(0))
        top_up(control.port, "/admin/v1/accounts/bench/ledger")
        gateway = start_gateway(services, args.muxgate, "muxgate", redis_proc.url(0))
        metering = MeteringBackend(control.service, redis_proc.service, redis_proc.client(0))
        target = Target(
            "muxgate",
            gateway.service,
            gateway.port,
            "/api/v1/chat/completions",
            "bench/",
            ("json", "burst"),
            metering,
        )
        items = switched_items(control.port, args.feature)
        print(f"· switched: {', '.join(items)}", file=sys.stderr)
        for round_no in range(1, args.rounds + 1):
            # ABBA: each side goes first every other round, so order effects cancel too.
            for on in (True, False) if round_no % 2 else (False, True):
                switch(control.port, gateway.port, items, on)
                for case_name in args.cases:
                    row = measure_load(target, CASES[case_name], services, mock, settings)
                    if row.errors:
                        raise BenchError(f"{row.errors} failed requests in {case_name}")
                    cpu.setdefault((case_name, on), []).append(row.cpu_us_per_req)
                    side = "on " if on else "off"
                    print(
                        f"· round {round_no} {args.feature} {side} {case_name:5} "
                        f"{row.rps_c32:8,.0f} req/s {row.cpu_us_per_req:7.1f} µs CPU/req",
                        file=sys.stderr,
                    )
    finally:
        services.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)

    goal = GOALS[args.feature]
    lines = [
        f"## {args.feature}: gateway CPU per request, switched on vs off",
        "",
        f"{args.rounds} ABBA rounds of {args.duration} s at c=32 per side and case "
        f"(warm-up {args.warmup} s); switched: {', '.join(items)}.",
        "",
        "| case | on (µs/req, median) | off (µs/req, median) | on / off | target |",
        "|---|--:|--:|--:|--:|",
    ]
    worst = 0.0
    for case_name in args.cases:
        with_it = statistics.median(cpu[(case_name, True)])
        without = statistics.median(cpu[(case_name, False)])
        ratio = with_it / without if without else float("inf")
        worst = max(worst, ratio)
        lines.append(
            f"| {CASES[case_name].title} | {with_it:.1f} | {without:.1f} | {ratio:.3f}{TIMES} "
            f"| ≤ {goal:.2f}{TIMES} |"
        )
    verdict = "met" if worst <= goal else "MISSED"
    lines += [
        "",
        f"Goal ({goal:.2f}{TIMES}): {verdict}. Run time {time.monotonic() - started:.0f}s.",
    ]
    print("\n".join(lines))
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feature", choices=sorted(GOALS), required=True)
    parser.add_argument("--rounds", type=int, default=4, help="on/off rounds (default 4)")
    parser.add_argument("--duration", type=int, default=6, help="seconds per measurement")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up seconds per measurement")
    parser.add_argument("--cases", default="json,burst", help="comma-separated: json,burst")
    parser.add_argument("--muxgate", type=Path, default=ROOT / ".venv" / "bin" / "muxgate")
    args = parser.parse_args(argv)
    args.cases = [c for c in args.cases.split(",") if c]
    for case in args.cases:
        if case not in ("json", "burst"):
            parser.error(f"--cases: {case!r} is not json or burst")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    return run_main(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
