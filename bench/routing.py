"""Routing decision time: how long `_native` takes to plan the channels of one request for a
model with 10 channels, under each routing control. The decision runs in a loop inside the
extension (`Engine.route(..., repeat=N)`), so the Python call is paid once per loop; the time
of one call with `repeat=1` is subtracted. Target: at most 2 µs per decision.

Run: `.venv/bin/python bench/routing.py [--channels 10] [--decisions 200000]`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

from muxgate import _native, wire

GOAL_US = 2.0
MODEL = "bench/routed"


def snapshot(channels: int) -> bytes:
    """A model with `channels` channels on as many providers, with prices and live figures."""
    providers = [
        wire.Provider(id=f"p{i}", base_url=f"http://127.0.0.1:{9000 + i}/v1")
        for i in range(channels)
    ]
    routed = wire.Model(
        slug=MODEL,
        channels=[
            wire.Channel(
                id=f"c{i}",
                provider=f"p{i}",
                upstream_model="m",
                weight=1 + i % 3,
                price=wire.Price(prompt=100 + 7 * i, completion=400 + 13 * (i % 4)),
                stats=wire.LiveStats(
                    ttft_p50_ms=200.0 + 31 * (i % 5),
                    tokens_per_second_p50=40.0 + 9 * (i % 7),
                    error_rate=0.01 * (i % 3),
                ),
            )
            for i in range(channels)
        ],
    )
    return wire.RoutingSnapshot(version=1, providers=providers, models=[routed]).encode()


def per_decision_us(engine: _native.Engine, model: str, body: bytes, decisions: int) -> float:
    """Median over rounds of (one call deciding `decisions` times minus one call deciding once)."""
    rounds = []
    for _ in range(7):
        start = time.perf_counter_ns()
        engine.route(model, body, 1)
        single = time.perf_counter_ns() - start
        start = time.perf_counter_ns()
        engine.route(model, body, decisions)
        looped = time.perf_counter_ns() - start
        rounds.append((looped - single) / (decisions - 1) / 1000)
    return statistics.median(rounds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--channels", type=int, default=10)
    parser.add_argument("--decisions", type=int, default=200_000)
    args = parser.parse_args(argv)
    engine = _native.Engine()
    warnings = engine.load_snapshot(snapshot(args.channels))
    if warnings:
        print("\n".join(warnings), file=sys.stderr)
        return 1
    cases = [
        ("weighted, health and latency (default)", MODEL, {}),
        ("weighted round-robin", MODEL, {"provider": {"routing": {"type": "round_robin"}}}),
        (
            "priority: price",
            MODEL,
            {"provider": {"routing": {"type": "priority", "primary_factor": "price"}}},
        ),
        (
            "priority: latency",
            MODEL,
            {"provider": {"routing": {"type": "priority", "primary_factor": "latency"}}},
        ),
        (
            "priority: throughput",
            MODEL,
            {"provider": {"routing": {"type": "priority", "primary_factor": "throughput"}}},
        ),
        (
            "order: 3 listed providers",
            MODEL,
            {"provider": {"routing": {"type": "order", "providers": ["p7", "p2", "p5"]}}},
        ),
        ("pinned provider (model:provider)", f"{MODEL}:p4", {}),
    ]
    lines = [
        f"## Routing decision time, one model with {args.channels} channels",
        "",
        f"`_native` `Engine.route`, {args.decisions:,} decisions per call, median of 7 calls.",
        "",
        "| routing | µs per decision | target |",
        "|---|--:|--:|",
    ]
    worst = 0.0
    for title, model, fields in cases:
        us = per_decision_us(engine, model, json.dumps(fields).encode(), args.decisions)
        worst = max(worst, us)
        lines.append(f"| {title} | {us:.3f} | ≤ {GOAL_US:.0f} |")
    verdict = "met" if worst <= GOAL_US else "MISSED"
    lines += ["", f"Goal (≤ {GOAL_US:.0f} µs per decision): {verdict}."]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
