"""The production processes as an operator runs them: `muxgate control` and `muxgate gateway`
started through the CLI, each in a process group of its own so that stopping it (SIGINT, then
SIGKILL) or killing it outright also reaches the granian workers it spawned."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from waiting import HANG

LOADED = re.compile(r"muxgate\.gateway\.snapshots\[(\d+)\]: routing snapshot (\d+) loaded")

ADMIN_TOKEN = "deployment-admin-token"


class Node:
    """One CLI process; `start()` may be called again after `stop()`/`kill()` (same port)."""

    name: str

    def __init__(self, tmp: Path, name: str, port: int, env: dict[str, str] | None) -> None:
        self.tmp = tmp
        self.name = name
        self.port = port
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = tmp / f"{name}.log"
        self.hung = False
        """A SIGINT did not stop it: it had to be killed."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def args(self) -> list[str]:
        raise NotImplementedError

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        with self.log_path.open("ab") as log:
            log.write(f"--- start {time.strftime('%H:%M:%S')}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "muxgate.cli", *self.args()],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
                cwd=self.tmp,
                start_new_session=True,
            )

    def stop(self, timeout: float = 10.0) -> float:
        """SIGINT (a graceful shutdown), SIGKILL after `timeout`; the seconds it took."""
        started = time.monotonic()
        proc = self.proc
        if proc is None or proc.poll() is not None:
            self._kill_group()
            return 0.0
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.hung = True
            self._kill_group()
            proc.wait()
        self._kill_group()  # workers that outlived their main process
        return time.monotonic() - started

    def kill(self) -> None:
        """SIGKILL the main process and its workers at once: a crash, no cleanup."""
        proc = self.proc
        if proc is None:
            return
        self._kill_group()
        proc.wait()

    def _kill_group(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _wait(self, ready: httpx.Request, want: int | None, timeout: float) -> None:
        """Until `ready` answers `want` (any status when None) or the process exits."""
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=10.0) as client:
            while time.monotonic() < deadline:
                if self.proc is not None and self.proc.poll() is not None:
                    raise AssertionError(
                        f"{self.name} exited ({self.proc.returncode}):\n{self.log()}"
                    )
                try:
                    status = client.send(ready).status_code
                    if want is None or status == want:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.02)
        raise AssertionError(f"{self.name} not ready after {timeout} s:\n{self.log()}")


class ControlNode(Node):
    def __init__(self, tmp: Path, port: int, database: str, redis_url: str) -> None:
        super().__init__(tmp, "control", port, {"MUXGATE_ADMIN_TOKEN": ADMIN_TOKEN})
        self.database = database
        self.redis_url = redis_url

    def args(self) -> list[str]:
        return [
            "control",
            "--database",
            self.database,
            "--redis",
            self.redis_url,
            "--port",
            str(self.port),
        ]

    def wait_ready(self, timeout: float = HANG) -> None:
        request = httpx.Request(
            "GET",
            f"{self.url}/admin/v1/accounts",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        self._wait(request, 200, timeout)


class GatewayNode(Node):
    def __init__(
        self,
        tmp: Path,
        name: str,
        port: int,
        *,
        redis_url: str,
        workers: int,
        env: dict[str, str] | None = None,
    ) -> None:
        super().__init__(tmp, name, port, env)
        self.redis_url = redis_url
        self.workers = workers
        self.spill_dir = tmp / f"{name}-spill"

    def args(self) -> list[str]:
        return [
            "gateway",
            "--redis",
            self.redis_url,
            "--workers",
            str(self.workers),
            "--port",
            str(self.port),
            "--spill-dir",
            str(self.spill_dir),
        ]

    def spill_files(self) -> list[Path]:
        if not self.spill_dir.exists():
            return []
        return sorted(p for p in self.spill_dir.iterdir() if ".jsonl" in p.name)

    def spill_drained(self, timeout: float = HANG) -> bool:
        """True once every spill file has been replayed and removed."""
        deadline = time.monotonic() + timeout
        while self.spill_files():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def wait_listening(self, timeout: float = HANG) -> None:
        """Accepting requests, whatever /healthz says."""
        self._wait(httpx.Request("GET", f"{self.url}/healthz"), None, timeout)
        self._wait_workers(timeout)

    def wait_healthy(self, timeout: float = HANG) -> None:
        """Serving a routing table (/healthz 200) with every worker up: granian ignores a
        SIGINT that arrives while a worker is still starting, so stopping any earlier hangs."""
        self._wait(httpx.Request("GET", f"{self.url}/healthz"), 200, timeout)
        self._wait_workers(timeout)

    def _wait_workers(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.workers_started() < self.workers:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: workers did not start:\n{self.log()}")
            time.sleep(0.02)

    def wait_routing(self, version: int, timeout: float = HANG) -> None:
        """Until every worker has logged loading routing snapshot `version` or a later one:
        /healthz answers from whichever worker takes the connection, this asks each of them."""
        deadline = time.monotonic() + timeout
        while len(self.workers_with_routing(version)) < self.workers:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: snapshot {version} not loaded:\n{self.log()}")
            time.sleep(0.02)

    def workers_with_routing(self, version: int) -> set[str]:
        """The worker PIDs that loaded routing snapshot `version` or later since the last start."""
        current = self.log().rpartition("--- start ")[2]
        loaded = re.findall(
            r"muxgate\.gateway\.snapshots\[(\d+)\]: routing snapshot (\d+) loaded", current
        )
        return {pid for pid, v in loaded if int(v) >= version}

    def workers_started(self) -> int:
        """Workers that reported their start since the last `start()` (from the log)."""
        current = self.log().rpartition("--- start ")[2]
        return sum(f"Started worker-{i} runtime" in current for i in range(1, self.workers + 1))
