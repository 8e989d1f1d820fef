"""The benchmarks' process handling: starting services in their own sessions, stopping them by
PID with their children (never a reused PID), CPU and RSS of a process tree from /proc, and
waiting for an HTTP service to answer."""

from __future__ import annotations

import contextlib
import http.client
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TypeVar

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = 1024
API_KEY = "sk-bench"
T = TypeVar("T")


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
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    timeout: float = 10.0,
    *,
    token: str = API_KEY,
) -> tuple[int, bytes]:
    """One request on a fresh connection, authenticated with `token` (the bench's API key)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
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


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def run_main(run: Callable[[T], int], args: T) -> int:
    """A benchmark's entry point: SIGTERM unwinds like Ctrl-C, so every process started is
    stopped; a setup failure prints its reason and exits 2."""
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return run(args)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGTERM, previous)
