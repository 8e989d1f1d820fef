"""Gateway overhead benchmark: muxgate against an nginx `proxy_pass` hop, a bare granian app and
the mock provider itself, all on 127.0.0.1.

Starts the mock provider, nginx (1 worker, keep-alive upstream pool, no buffering), a bare
granian RSGI app and `muxgate serve` (1 worker), drives each with wrk for three cases
(non-streaming JSON, a 100-chunk SSE stream written in one burst, a 100-chunk SSE stream written
chunk by chunk) and prints one markdown table per case plus muxgate's RSS growth. CPU per request
is the utime+stime of the target's own process tree over the c=32 run divided by the requests wrk
completed. Every process started here is stopped by PID on exit. See bench/README.md.

Run: `make bench` or `.venv/bin/python bench/run.py [--quick] [--output bench/results.md]`.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from types import FrameType

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
VENV_BIN = ROOT / ".venv" / "bin"
POST_LUA = BENCH_DIR / "post.lua"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = 1024

API_KEY = "sk-bench"
CHUNKS = 100
PACED_TPS = 2000
# 100 words (= CHUNKS) so each stream chunk carries one word.
REPLY = (
    "The quick brown fox jumps over the lazy dog while the mock provider streams a long "
    "answer made of many small words so that the benchmark can measure how much the "
    "gateway costs for every chunk of server sent events it relays to its client without "
    "the mock itself ever becoming the bottleneck of the run which would make the numbers "
    "meaningless for anyone who reads them later on when comparing the gateway with a "
    "plain nginx proxy hop that forwards the very same bytes over the same loopback "
    "interface on this machine and then reports the cost per request"
)

TARGETS = ("mock", "nginx", "bare", "muxgate")
TARGET_TITLES = {
    "mock": "direct to mock",
    "nginx": "nginx proxy_pass",
    "bare": "bare granian RSGI",
    "muxgate": "muxgate",
}


@dataclass(frozen=True)
class Case:
    name: str
    title: str
    stream: bool


CASES = {
    "json": Case("json", "(a) non-streaming JSON", stream=False),
    "burst": Case("burst", f"(b) {CHUNKS}-chunk SSE stream, written in one burst", stream=True),
    "paced": Case(
        "paced",
        f"(c) {CHUNKS}-chunk SSE stream, paced ({PACED_TPS} tokens/s, one write per chunk)",
        stream=True,
    ),
}

# Issue targets, checked against muxgate's numbers.
GOAL_JSON_X_NGINX = 4.0
STRETCH_JSON_X_NGINX = 3.0
GOAL_BURST_X_NGINX = 5.0
GOAL_PACED_US_PER_CHUNK = 10.0
GOAL_ADDED_P50_US = 200.0
GOAL_ADDED_P99_US = 1000.0
GOAL_RSS_GROWTH_MB = 10.0
TIMES = "\u00d7"


class BenchError(RuntimeError):
    """A setup or measurement failure that makes the run meaningless."""


# --------------------------------------------------------------------------- /proc accounting


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (field 3 onwards), or None if gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()


def _start_time(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def process_tree(root: int) -> list[int]:
    """`root` and all its live descendants, from the parent links in /proc/*/stat."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        if _stat_fields(pid) is None:
            continue
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def cpu_seconds(root: int) -> float:
    """utime+stime of every process in the tree (each process's stat covers all its threads)."""
    ticks = 0
    for pid in process_tree(root):
        fields = _stat_fields(pid)
        if fields:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / CLK_TCK


def system_busy_seconds() -> float:
    """Non-idle CPU time of the whole machine, all cores, from /proc/stat."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def rss_bytes(root: int) -> int:
    """Sum of VmRSS over the process tree."""
    total = 0
    for pid in process_tree(root):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * PAGE_KB
    return total


# --------------------------------------------------------------------------- processes


@dataclass
class Service:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    # (pid, start time) of every process seen in its tree, so cleanup never signals a reused PID.
    seen: dict[int, int] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def remember_tree(self) -> None:
        for pid in process_tree(self.pid):
            start = _start_time(pid)
            if start is not None:
                self.seen.setdefault(pid, start)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class Services:
    """Everything this run started; `stop_all` signals them by PID, children included."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.started: list[Service] = []

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Service:
        log = self.workdir / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                env={**os.environ, **(env or {})},
                start_new_session=True,
            )
        service = Service(name, proc, log)
        self.started.append(service)
        service.remember_tree()
        return service

    def own_cpu_seconds(self) -> float:
        """CPU of everything this run started: services, finished wrk runs and this script."""
        me = resource.getrusage(resource.RUSAGE_SELF)
        done = resource.getrusage(resource.RUSAGE_CHILDREN)
        total = me.ru_utime + me.ru_stime + done.ru_utime + done.ru_stime
        return total + sum(cpu_seconds(s.pid) for s in self.started)

    def stop_all(self) -> None:
        for service in reversed(self.started):
            stop(service)
        self.started.clear()


def stop(service: Service) -> None:
    service.remember_tree()
    if service.proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            service.proc.send_signal(signal.SIGTERM)
        try:
            service.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                service.proc.kill()
            service.proc.wait(timeout=5)
    # Children that outlived their parent (same PID *and* start time as recorded) are killed.
    for pid, start in service.seen.items():
        if pid != service.pid and _start_time(pid) == start:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def http_request(
    port: int, method: str, path: str, body: bytes | None = None, timeout: float = 10.0
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def wait_ready(
    service: Service,
    port: int,
    *,
    method: str,
    path: str,
    body: bytes | None,
    timeout: float = 30.0,
) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if service.proc.poll() is not None:
            raise BenchError(
                f"{service.name} exited with {service.proc.returncode}:\n{service.log_tail()}"
            )
        try:
            status, data = http_request(port, method, path, body, timeout=2.0)
        except OSError as exc:
            last = str(exc)
        else:
            if status == 200:
                service.remember_tree()
                return
            last = f"HTTP {status}: {data[:200]!r}"
        time.sleep(0.1)
    raise BenchError(
        f"{service.name} not ready after {timeout:.0f}s ({last}):\n{service.log_tail()}"
    )


# --------------------------------------------------------------------------- configs


def request_body(model: str, stream: bool) -> bytes:
    body: dict[str, object] = {"model": model, "messages": [{"role": "user", "content": "hello"}]}
    if stream:
        body["stream"] = True
    return json.dumps(body, separators=(",", ":")).encode()


def mock_toml() -> str:
    reply = json.dumps(REPLY)
    return (
        "# Generated by bench/run.py: one script per benchmark case.\n"
        "[models.json]\n\n"
        "[models.burst]\n"
        f"reply = {reply}\nchunks = {CHUNKS}\nburst = true\n\n"
        "[models.paced]\n"
        f"reply = {reply}\nchunks = {CHUNKS}\ntokens_per_second = {PACED_TPS}\n"
    )


def muxgate_toml(mock_port: int) -> str:
    parts = [
        "# Generated by bench/run.py: one model per benchmark case, all on the mock.\n"
        "[gateway]\nmax_attempts = 3\n\n"
        f'[[providers]]\nid = "mock"\nbase_url = "http://127.0.0.1:{mock_port}/v1"\n'
    ]
    for case in CASES:
        parts.append(
            f'\n[[models]]\nslug = "bench/{case}"\n'
            f'  [[models.channels]]\n  id = "{case}@mock"\n  provider = "mock"\n'
            f'  upstream_model = "{case}"\n  weight = 1\n'
            '  price = { prompt = "0.15", completion = "0.60" }\n'
        )
    parts.append(
        f'\n[[accounts]]\nid = "bench"\n\n[[keys]]\nid = "bench"\naccount = "bench"\n'
        f'secret = "{API_KEY}"\n'
    )
    return "".join(parts)


def nginx_conf(prefix: Path, port: int, mock_port: int) -> str:
    user = "user root;\n" if os.geteuid() == 0 else ""
    return f"""# Generated by bench/run.py: a plain keep-alive proxy hop to the mock provider.
daemon off;
master_process on;
worker_processes 1;
{user}pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{
    worker_connections 1024;
}}
http {{
    access_log off;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    upstream mock {{
        server 127.0.0.1:{mock_port};
        keepalive 64;
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://mock;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }}
    }}
}}
"""


# --------------------------------------------------------------------------- wrk


@dataclass(frozen=True)
class WrkResult:
    requests: int
    duration_s: float
    p50_us: float
    p99_us: float
    errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0


def run_wrk(
    url: str,
    body: bytes,
    *,
    threads: int,
    connections: int,
    seconds: int,
    latency: bool = False,
) -> WrkResult:
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s"]
    if latency:
        argv.append("--latency")
    argv += ["-s", str(POST_LUA), url]
    env = {**os.environ, "BENCH_BODY": body.decode(), "BENCH_AUTH": f"Bearer {API_KEY}"}
    done = subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    for line in done.stdout.splitlines():
        if line.startswith("BENCH-RESULT "):
            raw = json.loads(line.removeprefix("BENCH-RESULT "))
            errors = sum(raw[k] for k in ("connect", "read", "write", "status", "timeout"))
            return WrkResult(
                requests=raw["requests"],
                duration_s=raw["duration_us"] / 1e6,
                p50_us=raw["p50_us"],
                p99_us=raw["p99_us"],
                errors=errors,
            )
    raise BenchError(f"wrk gave no result (exit {done.returncode}):\n{done.stdout}{done.stderr}")


# --------------------------------------------------------------------------- measurement


@dataclass(frozen=True)
class Target:
    name: str
    service: Service
    port: int
    path: str
    model_prefix: str
    cases: tuple[str, ...]

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def body(self, case: Case) -> bytes:
        return request_body(self.model_prefix + case.name, case.stream)


@dataclass
class Measurement:
    target: str
    case: str
    rps_c32: float = 0.0
    requests_c32: int = 0
    cpu_us_per_req: float = 0.0
    mock_cpu_us_per_req: float = 0.0
    # CPU used by processes this run did not start (% of one core) during the c=32 run.
    other_cpu_pct: float = 0.0
    p50_c1_us: float = 0.0
    p99_c1_us: float = 0.0
    errors: int = 0


@dataclass(frozen=True)
class Settings:
    warmup_s: int
    c32_s: int
    c1_s: int
    latency_rounds: int
    rss_requests: int
    rss_cap_s: int


def check_answer(target: Target, case: Case) -> None:
    """One request before loading, so a broken scenario fails loudly instead of measuring errors."""
    status, data = http_request(target.port, "POST", target.path, target.body(case), timeout=10)
    if status != 200:
        raise BenchError(f"{target.name}/{case.name}: HTTP {status}: {data[:300]!r}")
    if case.stream and target.name != "bare":
        events = data.count(b"data:")
        if b"[DONE]" not in data or events < CHUNKS:
            raise BenchError(
                f"{target.name}/{case.name}: expected a {CHUNKS}-chunk SSE stream ending in "
                f"[DONE], got {events} events: {data[:300]!r}"
            )


def measure_load(
    target: Target, case: Case, services: Services, mock: Service, settings: Settings
) -> Measurement:
    """Warm-up, then requests/s and CPU per request of the target's process tree at c=32."""
    check_answer(target, case)
    url, body = target.url(), target.body(case)
    result = Measurement(target.name, case.name)
    run_wrk(url, body, threads=2, connections=32, seconds=settings.warmup_s)
    cpu_before, mock_before = cpu_seconds(target.service.pid), cpu_seconds(mock.pid)
    busy_before, ours_before = system_busy_seconds(), services.own_cpu_seconds()
    loaded = run_wrk(url, body, threads=2, connections=32, seconds=settings.c32_s)
    cpu_after, mock_after = cpu_seconds(target.service.pid), cpu_seconds(mock.pid)
    busy_after, ours_after = system_busy_seconds(), services.own_cpu_seconds()
    if loaded.duration_s:
        other = (busy_after - busy_before) - (ours_after - ours_before)
        result.other_cpu_pct = max(0.0, other) * 100 / loaded.duration_s
    result.rps_c32 = loaded.rps
    result.requests_c32 = loaded.requests
    if loaded.requests:
        result.cpu_us_per_req = (cpu_after - cpu_before) * 1e6 / loaded.requests
        result.mock_cpu_us_per_req = (mock_after - mock_before) * 1e6 / loaded.requests
    result.errors = loaded.errors
    return result


def measure_latency(
    targets: list[Target], case: Case, rows: dict[str, Measurement], settings: Settings
) -> None:
    """p50/p99 at c=1: rounds that visit every target in turn, so a burst of outside load hits
    one round of one target; each percentile is the median over that target's rounds."""
    seconds = max(1, settings.c1_s // settings.latency_rounds)
    rounds: dict[str, list[WrkResult]] = {t.name: [] for t in targets}
    for _ in range(settings.latency_rounds):
        for target in targets:
            single = run_wrk(
                target.url(),
                target.body(case),
                threads=1,
                connections=1,
                seconds=seconds,
                latency=True,
            )
            rounds[target.name].append(single)
    for target in targets:
        row = rows[target.name]
        row.p50_c1_us = statistics.median(r.p50_us for r in rounds[target.name])
        row.p99_c1_us = statistics.median(r.p99_us for r in rounds[target.name])
        row.errors += sum(r.errors for r in rounds[target.name])


@dataclass(frozen=True)
class RssResult:
    requests: int
    before_bytes: int
    after_bytes: int
    errors: int

    @property
    def growth_mb(self) -> float:
        return (self.after_bytes - self.before_bytes) / 1e6


def run_count(url: str, body: bytes, count: int, deadline: float) -> tuple[int, int]:
    """At least `count` requests at c=32 (or as many as fit before `deadline`), as a series of
    short wrk runs sized from the rate seen so far; returns (completed, failed)."""
    done, errors, elapsed = 0, 0, 0.0
    while done < count and time.monotonic() < deadline:
        rate = done / elapsed if elapsed else 0.0
        seconds = 1 if not rate else math.ceil((count - done) / rate)
        seconds = max(1, min(seconds, 10, math.ceil(deadline - time.monotonic())))
        result = run_wrk(url, body, threads=2, connections=32, seconds=seconds)
        if result.requests == 0:
            raise BenchError(f"no request completed in {seconds}s against {url}")
        done += result.requests
        errors += result.errors
        elapsed += result.duration_s
    return done, errors


def measure_rss(target: Target, settings: Settings) -> RssResult:
    """RSS of muxgate's process tree before and after `rss_requests` requests, half JSON and
    half burst SSE, after a warm-up of both."""
    url = target.url()
    bodies = [target.body(CASES["json"]), target.body(CASES["burst"])]
    for body in bodies:
        run_wrk(url, body, threads=2, connections=32, seconds=settings.warmup_s)
    time.sleep(0.5)
    before = rss_bytes(target.service.pid)
    deadline = time.monotonic() + settings.rss_cap_s
    done = errors = 0
    for i, body in enumerate(bodies):
        share = (settings.rss_requests - done) // (len(bodies) - i)
        completed, failed = run_count(url, body, share, deadline)
        done += completed
        errors += failed
    time.sleep(0.5)
    return RssResult(done, before, rss_bytes(target.service.pid), errors)


# --------------------------------------------------------------------------- report


def fmt_us(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.1f}"


def fmt_added(value: float) -> str:
    return ("+" if value >= 0 else "-") + fmt_us(abs(value))


def case_table(case: Case, rows: dict[str, Measurement], targets: list[str]) -> list[str]:
    paced = case.name == "paced"
    head = "| target | req/s @32 | p50 / p99 @1 (µs) | added p50 / p99 @1 (µs) | CPU µs/req |"
    rule = "|---|--:|--:|--:|--:|"
    if paced:
        head += " CPU µs/chunk |"
        rule += "--:|"
    head += f" {TIMES} nginx |"
    rule += "--:|"
    lines = [f"### {case.title}", "", head, rule]
    direct, nginx = rows.get("mock"), rows.get("nginx")
    for name in targets:
        row = rows.get(name)
        title = TARGET_TITLES[name]
        if row is None:
            cells = ["n/a"] * (6 if paced else 5)
            lines.append(f"| {title} | " + " | ".join(cells) + " |")
            continue
        added = "—"
        if direct is not None and name != "mock":
            added = (
                f"{fmt_added(row.p50_c1_us - direct.p50_c1_us)} / "
                f"{fmt_added(row.p99_c1_us - direct.p99_c1_us)}"
            )
        cells = [
            f"{row.rps_c32:,.0f}",
            f"{fmt_us(row.p50_c1_us)} / {fmt_us(row.p99_c1_us)}",
            added,
            fmt_us(row.cpu_us_per_req),
        ]
        if paced:
            cells.append(f"{row.cpu_us_per_req / CHUNKS:.2f}")
        ratio = "—"
        if nginx is not None and nginx.cpu_us_per_req > 0:
            ratio = f"{row.cpu_us_per_req / nginx.cpu_us_per_req:.2f}{TIMES}"
        cells.append(ratio)
        flag = f" ⚠ {row.errors} errors" if row.errors else ""
        lines.append(f"| {title}{flag} | " + " | ".join(cells) + " |")
    mock_costs = ", ".join(
        f"{TARGET_TITLES[n]} {fmt_us(rows[n].mock_cpu_us_per_req)}"
        for n in targets
        if n in rows and n != "bare"
    )
    if mock_costs:
        lines += ["", f"Mock provider CPU µs/req during the c=32 runs: {mock_costs}."]
    other = max((r.other_cpu_pct for r in rows.values()), default=0.0)
    lines += [
        "",
        f"Other processes on the machine used at most {other:.0f}% of one core during these "
        "c=32 runs" + (" (busy machine: treat these numbers with care)." if other > 10 else "."),
    ]
    return [*lines, ""]


def goal_lines(results: dict[str, dict[str, Measurement]], rss: RssResult | None) -> list[str]:
    lines = [
        "### Targets (muxgate)",
        "",
        "| target | goal | measured | met |",
        "|---|---|--:|:-:|",
    ]

    def add(what: str, goal: str, value: float | None, limit: float, unit: str = "") -> None:
        if value is None:
            lines.append(f"| {what} | {goal} | not measured | — |")
            return
        shown = f"{value:,.0f}" if unit == " µs" and abs(value) >= 100 else f"{value:.2f}"
        lines.append(f"| {what} | {goal} | {shown}{unit} | {'yes' if value <= limit else 'no'} |")

    def ratio(case: str) -> float | None:
        rows = results.get(case, {})
        mux, nginx = rows.get("muxgate"), rows.get("nginx")
        if mux is None or nginx is None or nginx.cpu_us_per_req <= 0:
            return None
        return mux.cpu_us_per_req / nginx.cpu_us_per_req

    add(
        "JSON CPU/request vs nginx",
        f"≤ {GOAL_JSON_X_NGINX:g}{TIMES} (stretch {STRETCH_JSON_X_NGINX:g}{TIMES})",
        ratio("json"),
        GOAL_JSON_X_NGINX,
        TIMES,
    )
    add(
        "SSE burst CPU/request vs nginx",
        f"≤ {GOAL_BURST_X_NGINX:g}{TIMES}",
        ratio("burst"),
        GOAL_BURST_X_NGINX,
        TIMES,
    )
    paced = results.get("paced", {}).get("muxgate")
    add(
        "paced SSE gateway CPU per relayed chunk",
        f"≤ {GOAL_PACED_US_PER_CHUNK:g} µs",
        paced.cpu_us_per_req / CHUNKS if paced else None,
        GOAL_PACED_US_PER_CHUNK,
        " µs",
    )
    for case, rows in results.items():
        mux, direct = rows.get("muxgate"), rows.get("mock")
        if mux is None or direct is None:
            continue
        add(
            f"added p50 @1, {case}",
            f"≤ {GOAL_ADDED_P50_US:g} µs",
            mux.p50_c1_us - direct.p50_c1_us,
            GOAL_ADDED_P50_US,
            " µs",
        )
        add(
            f"added p99 @1, {case}",
            f"≤ {GOAL_ADDED_P99_US:g} µs",
            mux.p99_c1_us - direct.p99_c1_us,
            GOAL_ADDED_P99_US,
            " µs",
        )
    add(
        f"RSS growth over {rss.requests:,} requests" if rss else "RSS growth",
        f"≤ {GOAL_RSS_GROWTH_MB:g} MB",
        rss.growth_mb if rss else None,
        GOAL_RSS_GROWTH_MB,
        " MB",
    )
    return [*lines, ""]


def tool_version(argv: list[str]) -> str:
    """First line of `argv`'s output, without nginx's prefix and wrk's copyright."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    text = (done.stdout + done.stderr).strip().splitlines()
    if not text:
        return "?"
    return text[0].removeprefix("nginx version: ").split(" [")[0]


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "?"


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def environment_lines(
    settings: Settings, nginx: str, load: tuple[float, float, float]
) -> list[str]:
    return [
        f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {os.cpu_count()} CPUs, {cpu_model()}, Linux {platform.release()}",
        f"- muxgate {package_version('muxgate')}, granian {package_version('granian')}, "
        f"Python {platform.python_version()}, {tool_version([nginx, '-v'])}, "
        f"{tool_version(['wrk', '-v'])}",
        "- load average before the run: " + " / ".join(f"{x:.2f}" for x in load),
        f"- wrk: warm-up {settings.warmup_s}s at c=32, then {settings.c32_s}s at "
        f"`-t2 -c32` (req/s, CPU); latency at `-t1 -c1 --latency` in {settings.latency_rounds} "
        f"round(s) of {max(1, settings.c1_s // settings.latency_rounds)}s per target, "
        "median over rounds; all processes on 127.0.0.1, 1 worker each",
    ]


# --------------------------------------------------------------------------- main


def find_nginx(install: bool) -> str:
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), None
    )
    if found is None and install:
        apt = ["apt-get", "install", "-y", "-q", "nginx-light", "wrk"]
        print(f"installing: {' '.join(apt)}", file=sys.stderr)
        subprocess.run(apt, check=True, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        return find_nginx(install=False)
    if found is None:
        raise BenchError(
            "nginx not found; install it (Debian: apt-get install -y nginx-light wrk) "
            "or rerun with --install-deps as root"
        )
    return found


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run (~1 minute)")
    parser.add_argument(
        "--duration",
        type=int,
        help="seconds of the c=32 run, and of c=1 runs per target (default 10)",
    )
    parser.add_argument("--warmup", type=int, help="warm-up seconds per target and case")
    parser.add_argument(
        "--latency-rounds",
        type=int,
        help="c=1 rounds per case, the duration split between them (default 5, --quick 1)",
    )
    parser.add_argument(
        "--rss-requests",
        type=int,
        help="requests between muxgate's RSS readings (default 200000, --quick 20000)",
    )
    parser.add_argument(
        "--targets",
        default=",".join(TARGETS),
        help=f"comma-separated subset of {','.join(TARGETS)}",
    )
    parser.add_argument(
        "--cases", default=",".join(CASES), help=f"comma-separated subset of {','.join(CASES)}"
    )
    parser.add_argument("--output", type=Path, help="also write the markdown report here")
    parser.add_argument("--json", type=Path, help="also write the raw numbers here as JSON")
    parser.add_argument(
        "--muxgate",
        type=Path,
        default=VENV_BIN / "muxgate",
        help="muxgate executable (default .venv/bin/muxgate)",
    )
    parser.add_argument(
        "--install-deps", action="store_true", help="apt-get install nginx-light and wrk if missing"
    )
    parser.add_argument("--keep-workdir", action="store_true", help="keep configs and logs")
    args = parser.parse_args(argv)
    for option, allowed in (("targets", TARGETS), ("cases", tuple(CASES))):
        chosen = [x for x in getattr(args, option).split(",") if x]
        unknown = set(chosen) - set(allowed)
        if unknown or not chosen:
            parser.error(f"--{option}: choose from {','.join(allowed)}")
        setattr(args, option, [x for x in allowed if x in chosen])
    return args


def settings_from(args: argparse.Namespace) -> Settings:
    duration = args.duration or (2 if args.quick else 10)
    warmup = args.warmup or (1 if args.quick else 3)
    rss = (
        args.rss_requests if args.rss_requests is not None else (20_000 if args.quick else 200_000)
    )
    rounds = args.latency_rounds or (1 if args.quick else 5)
    return Settings(
        warmup_s=warmup,
        c32_s=duration,
        c1_s=duration,
        latency_rounds=rounds,
        rss_requests=rss,
        rss_cap_s=240,
    )


def start_targets(
    services: Services, args: argparse.Namespace, nginx: str, workdir: Path
) -> tuple[Service, dict[str, Target]]:
    mock_port = free_port()
    (workdir / "mock.toml").write_text(mock_toml())
    mock = services.start(
        "mock",
        [
            str(args.muxgate),
            "mock-provider",
            "--host",
            "127.0.0.1",
            "--port",
            str(mock_port),
            "--config",
            str(workdir / "mock.toml"),
            "--threads",
            "1",
        ],
    )
    path = "/v1/chat/completions"
    wait_ready(mock, mock_port, method="POST", path=path, body=request_body("json", stream=False))
    all_cases = tuple(CASES)
    targets = {"mock": Target("mock", mock, mock_port, path, "", all_cases)}

    if "nginx" in args.targets:
        prefix = workdir / "nginx"
        prefix.mkdir()
        port = free_port()
        (prefix / "nginx.conf").write_text(nginx_conf(prefix, port, mock_port))
        service = services.start(
            "nginx",
            [
                nginx,
                "-p",
                str(prefix),
                "-e",
                str(prefix / "error.log"),
                "-c",
                str(prefix / "nginx.conf"),
            ],
        )
        wait_ready(service, port, method="POST", path=path, body=request_body("json", stream=False))
        targets["nginx"] = Target("nginx", service, port, path, "", all_cases)

    if "bare" in args.targets:
        port = free_port()
        service = services.start(
            "bare",
            [
                str(VENV_BIN / "granian"),
                "--interface",
                "rsgi",
                "--workers",
                "1",
                "--loop",
                "uvloop",
                "--http",
                "1",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-access-log",
                "--log-level",
                "warning",
                "--working-dir",
                str(ROOT),
                "bench.bare_app:app",
            ],
        )
        wait_ready(service, port, method="POST", path=path, body=request_body("json", stream=False))
        targets["bare"] = Target("bare", service, port, path, "", ("json",))

    if "muxgate" in args.targets:
        port = free_port()
        config = workdir / "muxgate.toml"
        config.write_text(muxgate_toml(mock_port))
        service = services.start(
            "muxgate",
            [
                str(args.muxgate),
                "serve",
                "--config",
                str(config),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--data-dir",
                str(workdir / "muxgate-data"),
                "--workers",
                "1",
            ],
        )
        wait_ready(service, port, method="GET", path="/healthz", body=None)
        targets["muxgate"] = Target(
            "muxgate", service, port, "/api/v1/chat/completions", "bench/", all_cases
        )
    return mock, targets


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if shutil.which("wrk") is None and not args.install_deps:
        raise BenchError("wrk not found; install it (Debian: apt-get install -y wrk)")
    nginx = find_nginx(args.install_deps)
    if not args.muxgate.exists():
        raise BenchError(f"{args.muxgate} not found; run `make build` first")
    workdir = Path(tempfile.mkdtemp(prefix="muxgate-bench-"))
    services = Services(workdir)
    results: dict[str, dict[str, Measurement]] = {}
    rss: RssResult | None = None
    started, load = time.monotonic(), os.getloadavg()
    try:
        mock, targets = start_targets(services, args, nginx, workdir)
        for case_name in args.cases:
            case = CASES[case_name]
            chosen = [targets[n] for n in args.targets if case_name in targets[n].cases]
            rows = results.setdefault(case_name, {})
            for target in chosen:
                print(
                    f"· {case_name:5} {target.name:7} c=32 ...", end="", flush=True, file=sys.stderr
                )
                row = rows[target.name] = measure_load(target, case, services, mock, settings)
                print(
                    f" {row.rps_c32:8,.0f} req/s  {row.cpu_us_per_req:7.1f} µs CPU/req  "
                    f"(other load {row.other_cpu_pct:.0f}% of a core)",
                    file=sys.stderr,
                )
            print(f"· {case_name:5} c=1 latency ...", end="", flush=True, file=sys.stderr)
            measure_latency(chosen, case, rows, settings)
            print(
                "".join(f"  {n} {r.p50_c1_us:,.0f}/{r.p99_c1_us:,.0f} µs" for n, r in rows.items()),
                file=sys.stderr,
            )
        if "muxgate" in targets and settings.rss_requests > 0:
            print(f"· rss   muxgate {settings.rss_requests:,} requests ...", file=sys.stderr)
            rss = measure_rss(targets["muxgate"], settings)
    finally:
        services.stop_all()
        if args.keep_workdir:
            print(f"configs and logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    lines = ["## muxgate gateway overhead", "", *environment_lines(settings, nginx, load), ""]
    for case_name in args.cases:
        lines += case_table(CASES[case_name], results.get(case_name, {}), args.targets)
    if rss is not None:
        lines += [
            f"**RSS** (muxgate process tree, JSON and burst SSE halves): "
            f"{rss.before_bytes / 1e6:.1f} MB before, {rss.after_bytes / 1e6:.1f} MB after "
            f"{rss.requests:,} requests, growth {rss.growth_mb:+.1f} MB"
            + (f" ({rss.errors} failed requests)." if rss.errors else "."),
            "",
        ]
    if "muxgate" in args.targets:
        lines += goal_lines(results, rss)
    lines.append(f"Total run time {time.monotonic() - started:.0f}s.")
    report = "\n".join(lines) + "\n"
    print(report)
    if args.output:
        args.output.write_text(report)
    if args.json:
        raw = {
            "settings": asdict(settings),
            "results": {c: {t: asdict(m) for t, m in rows.items()} for c, rows in results.items()},
            "rss": asdict(rss) if rss else None,
        }
        args.json.write_text(json.dumps(raw, indent=2) + "\n")
    failed = sum(m.errors for case_rows in results.values() for m in case_rows.values())
    failed += rss.errors if rss else 0
    if failed:
        print(f"warning: {failed} failed requests during measurement", file=sys.stderr)
        return 1
    return 0


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def cleanup_on_sigterm() -> Iterator[None]:
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with cleanup_on_sigterm():
        try:
            return run(args)
        except BenchError as exc:
            print(f"bench: {exc}", file=sys.stderr)
            return 2


if __name__ == "__main__":
    sys.exit(main())
