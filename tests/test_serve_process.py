"""`muxgate serve` as an operator runs it: HTTPS with a certificate of its own, and Ctrl-C at any
moment of its start-up ends it promptly."""

from __future__ import annotations

import datetime
import ipaddress
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import openai
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import gateway_toml
from servers import free_port
from waiting import HANG


class Serve:
    """One `muxgate serve` in a process group of its own (as a terminal's Ctrl-C reaches it)."""

    def __init__(self, tmp: Path, *args: str) -> None:
        self.port = free_port()
        self.data_dir = tmp / "data"
        self.log_path = tmp / "serve.log"
        command = [sys.executable, "-m", "muxgate.cli", "serve", "--port", str(self.port)]
        command += ["--data-dir", str(self.data_dir), *args]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, cwd=tmp, start_new_session=True
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, ready: Callable[[], bool], timeout: float = HANG) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"exited ({self.proc.returncode}):\n{self.log()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"not ready after {timeout} s:\n{self.log()}")
            time.sleep(0.005)

    def ctrl_c(self) -> None:
        os.killpg(self.proc.pid, signal.SIGINT)

    def group_alive(self) -> bool:
        try:
            os.killpg(self.proc.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def kill(self) -> None:
        if self.group_alive():
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


@pytest.fixture
def serving(tmp_path: Path) -> Iterator[Callable[..., Serve]]:
    started: list[Serve] = []

    def start(*args: str, tmp: Path = tmp_path) -> Serve:
        serve = Serve(tmp, *args)
        started.append(serve)
        return serve

    yield start
    for serve in started:
        serve.kill()


def healthy(url: str, verify: ssl.SSLContext | bool = True) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=10, verify=verify).status_code == 200
        except httpx.HTTPError:
            return False

    return check


# --- HTTPS ----------------------------------------------------------------------------------


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "muxgate test")])
    now = datetime.datetime.now(datetime.UTC)
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_serve_answers_over_https_with_the_given_certificate(
    tmp_path: Path, serving: Callable[..., Serve]
) -> None:
    cert, key = self_signed(tmp_path)
    serve = serving("--tls-cert", str(cert), "--tls-key", str(key))
    url = f"https://127.0.0.1:{serve.port}"
    trusting = ssl.create_default_context(cafile=str(cert))
    serve.wait_for(healthy(url, trusting))
    assert f"OpenAI endpoint  {url}/api/v1" in serve.log()
    secret = (serve.data_dir / "demo-key").read_text().strip()
    with openai.OpenAI(
        base_url=f"{url}/api/v1", api_key=secret, http_client=httpx.Client(verify=trusting)
    ) as client:
        completion = client.chat.completions.create(
            model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "Hello"}]
        )
    assert completion.choices[0].message.content
    # Not the system's trust store's: refused; and no plain HTTP on the port.
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{url}/healthz", timeout=5)
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{serve.port}/healthz", timeout=5)


def test_the_gateway_section_of_the_config_turns_https_on(
    tmp_path: Path, serving: Callable[..., Serve]
) -> None:
    cert, key = self_signed(tmp_path)
    config = tmp_path / "muxgate.toml"
    gateway = f"[gateway]\ntls_cert = {str(cert)!r}\ntls_key = {str(key)!r}\n"
    config.write_text(gateway + gateway_toml([], [], []))
    serve = serving("--config", str(config))
    url = f"https://127.0.0.1:{serve.port}"
    serve.wait_for(healthy(url, ssl.create_default_context(cafile=str(cert))))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tls-cert", "cert.pem"], "needs both a certificate and its key"),
        (["--tls-cert", "cert.pem", "--tls-key", "missing.pem"], "cannot use"),
        (["--tls-cert", "key.pem", "--tls-key", "cert.pem"], "cannot use"),
    ],
)
def test_unusable_tls_files_are_refused_in_one_line(
    tmp_path: Path, args: list[str], message: str
) -> None:
    self_signed(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "muxgate.cli", "serve", "--data-dir", "data", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=HANG,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr, done.stderr


# --- Ctrl-C during start-up -----------------------------------------------------------------

# Moments of a start-up, each recognised by a line of the log (or by answering).
MOMENTS: list[tuple[str, str | None]] = [
    ("spawned", None),
    ("banner printed", "embedded mode"),
    ("granian starting", "Starting granian"),
    ("worker spawned", "Spawning worker-1"),
    ("worker starting", "starting the control plane"),
    ("routing loaded", "routing snapshot 1 loaded"),
    ("worker started", "Started worker-1"),
    ("serving", "healthy"),
]


def test_ctrl_c_at_any_moment_of_start_up_ends_serve_promptly(
    tmp_path: Path, serving: Callable[..., Serve]
) -> None:
    # A hang is what this catches: a process that stops at all stops within the guard.
    bound = HANG
    problems: list[str] = []
    for moment, marker in MOMENTS:
        serve = serving(tmp=_fresh(tmp_path, moment.replace(" ", "-")))
        if marker == "healthy":
            serve.wait_for(healthy(f"http://127.0.0.1:{serve.port}"))
        elif marker is not None:
            serve.wait_for(lambda marker=marker, serve=serve: marker in serve.log())
        serve.ctrl_c()
        began = time.monotonic()
        try:
            status = serve.proc.wait(timeout=bound)
        except subprocess.TimeoutExpired:
            serve.kill()
            problems.append(f"{moment}: still running after {bound:.0f} s:\n{serve.log()}")
            continue
        took = time.monotonic() - began
        # Right after the spawn the signal may land in Python's own start-up, before any of
        # muxgate runs: the interpreter's default (a KeyboardInterrupt traceback) is all there
        # can be. From then on it must be a clean exit.
        clean = status in (0, 130, -signal.SIGINT) and "Traceback" not in serve.log()
        if marker is not None and not clean:
            problems.append(f"{moment}: exit {status}:\n{serve.log()}")
        # Every process of the group (the worker too) is gone.
        deadline = time.monotonic() + bound - took
        while serve.group_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if serve.group_alive():
            problems.append(f"{moment}: a process outlived serve:\n{serve.log()}")
    assert not problems, "\n\n".join(f"Ctrl-C when {p}" for p in problems)


def _fresh(tmp_path: Path, name: str) -> Path:
    directory = tmp_path / name
    directory.mkdir()
    return directory
