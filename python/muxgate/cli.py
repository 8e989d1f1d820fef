"""`muxgate` command line: `serve` (embedded: everything in one process), `control` and
`gateway` (production processes around Redis), `config import|export`, `mock-provider`."""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
from pathlib import Path

from muxgate import __version__
from muxgate import config as configuration
from muxgate.datadir import DEFAULT_DATA_DIR, STORE_FILE, store_url
from muxgate.demo import demo_config, demo_key
from muxgate.mock import MockConfig, run, start

BANNER = """\
muxgate {version} — embedded mode
  OpenAI endpoint  {base}/api/v1   (alias {base}/v1)
  Anthropic        {base}/api/anthropic
  Gemini (Vertex)  {base}/api/vertex-ai
  admin API        {base}/admin/v1   (token in {token_file})
  admin API docs   {base}/admin/v1/schema   (OpenAPI /admin/v1/schema/openapi.json)
  models           {models}
  data directory   {data_dir}   (SQLite store {store_file})
{demo}"""

DEMO = """\
  demo provider    built-in mock at {mock_url}
  demo API key     {key}

  curl {base}/api/v1/chat/completions \\
    -H "Authorization: Bearer {key}" -H "Content-Type: application/json" \\
    -d '{{"model": "openai/gpt-4o-mini", "messages": [{{"role": "user", "content": "Hello"}}]}}'
"""

ADMIN_TOKEN_ENV = "MUXGATE_ADMIN_TOKEN"
JUDGE_URL_ENV = "MUXGATE_JUDGE_URL"
DATABASE_FORMS = (
    "sqlite:///relative/path.db, sqlite:////absolute/path.db or "
    "postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE (the password may instead come from "
    "$PGPASSWORD or ~/.pgpass)"
)


def own_url(host: str, port: int, scheme: str = "http") -> str:
    """Where this process's gateway answers locally (the hallucination judge's default)."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


def fail(message: str) -> int:
    print(f"muxgate: {message}", file=sys.stderr)
    return 2


def embedded_admin_token(data_dir: Path) -> str:
    """The admin token from the environment, else one created once per data directory."""
    if token := os.environ.get(ADMIN_TOKEN_ENV):
        return token
    path = data_dir / "admin-token"
    if path.exists():
        return path.read_text().strip()
    token = "mxa-" + secrets.token_urlsafe(32)
    path.write_text(token + "\n")
    path.chmod(0o600)
    return token


def database_of(args: argparse.Namespace) -> str:
    """`--database`, else the store `muxgate serve` keeps in `--data-dir`."""
    database: str = args.database or store_url(Path(args.data_dir))
    return database


def add_database_options(parser: argparse.ArgumentParser, uses: str) -> None:
    parser.add_argument(
        "--data-dir",
        default=DEFAULT_DATA_DIR,
        help=f"data directory of `muxgate serve` (default {DEFAULT_DATA_DIR}); {uses} its "
        f"SQLite store {STORE_FILE} unless --database is given",
    )
    parser.add_argument(
        "--database", metavar="URL", help=f"the store to use instead: {DATABASE_FORMS}"
    )


def make_data_dir(path: str) -> Path:
    data_dir = Path(path).resolve()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise configuration.ConfigError(
            f"cannot create the data directory {data_dir}: {exc.strerror}"
        ) from exc
    return data_dir


async def import_into(
    database: str, config: configuration.ConfigFile, *, compile_routing: bool = False
) -> tuple[list[str], int | None]:
    """Import `config`; its warnings and, with `compile_routing`, the version of the routing
    snapshot compiled from the result. A running control plane publishes a stored snapshot
    newer than the one on the bus (it watches for that), so compiling is how an import made
    from outside it reaches the workers."""
    from muxgate.control.routing import compile_snapshot  # noqa: PLC0415
    from muxgate.store import Store  # noqa: PLC0415 (keeps `mock-provider` light)
    from muxgate.store.config_io import import_config  # noqa: PLC0415

    store = await Store.open(database)
    try:
        warnings = await import_config(store, config)
        version = (await compile_snapshot(store)).version if compile_routing else None
        return warnings, version
    finally:
        await store.close()


async def check_store(database: str) -> None:
    """Open the store once (migrating it), so a database that cannot be opened fails the
    command in one line before any server starts."""
    from muxgate.store import Store  # noqa: PLC0415

    store = await Store.open(database)
    await store.close()


def warn(warnings: list[str]) -> None:
    for warning in warnings:
        print(f"muxgate: warning: {warning}", file=sys.stderr)


def serve(args: argparse.Namespace) -> int:
    from muxgate.store import DatabaseUnavailable, StoreError  # noqa: PLC0415

    if args.workers not in (None, 1):
        return fail(
            "embedded mode runs one worker; for more, run `muxgate control` and "
            "`muxgate gateway --workers N` with Redis (see the README)"
        )
    try:
        data_dir = make_data_dir(args.data_dir)
    except configuration.ConfigError as exc:
        return fail(str(exc))
    database = args.database or store_url(data_dir)
    mock = None
    demo: tuple[str, str] | None = None
    if args.config:
        try:
            cfg = configuration.load(args.config)
        except configuration.ConfigError as exc:
            return fail(str(exc))
    else:
        mock = start(MockConfig(), host="127.0.0.1", port=0, threads=1)
        demo = (f"http://127.0.0.1:{mock.port}/v1", demo_key(data_dir))
        cfg = demo_config(demo[0], demo[1], configuration.GatewaySection())
    try:
        try:
            warnings, _ = asyncio.run(import_into(database, cfg))
        except DatabaseUnavailable as exc:
            return fail(str(exc))
        except (configuration.ConfigError, StoreError) as exc:
            return fail(f"{args.config or 'demo configuration'}: {exc}")
        warn(warnings)
        return serve_embedded(args, cfg, data_dir, database, demo)
    finally:
        if mock is not None:
            mock.stop()


def serve_embedded(
    args: argparse.Namespace,
    cfg: configuration.ConfigFile,
    data_dir: Path,
    database: str,
    demo: tuple[str, str] | None,
) -> int:
    """Print the banner and serve until stopped; `demo` is the mock's URL and the demo key."""
    from muxgate.gateway import server  # noqa: PLC0415

    gateway = cfg.gateway
    host = args.host or gateway.host
    port = args.port if args.port is not None else gateway.port
    try:
        tls = server.TLS.of(args.tls_cert or gateway.tls_cert, args.tls_key or gateway.tls_key)
    except ValueError as exc:
        return fail(str(exc))
    scheme = "https" if tls else "http"
    demo_text = ""
    if demo is not None:
        mock_url, key = demo
        demo_text = DEMO.format(mock_url=mock_url, key=key, base=f"{scheme}://{host}:{port}")
    token = embedded_admin_token(data_dir)
    from_env = bool(os.environ.get(ADMIN_TOKEN_ENV))
    token_file = f"${ADMIN_TOKEN_ENV}" if from_env else data_dir / "admin-token"
    print(
        BANNER.format(
            version=__version__,
            base=f"{scheme}://{host}:{port}",
            token_file=token_file,
            models=", ".join(m.slug for m in cfg.models) or "(none)",
            data_dir=data_dir,
            store_file=STORE_FILE,
            demo=demo_text,
        ),
        flush=True,
    )
    env = {
        "MUXGATE_MODE": "embedded",
        "MUXGATE_DATA_DIR": str(data_dir),
        "MUXGATE_DATABASE": database,
        ADMIN_TOKEN_ENV: token,
        # The judge asks its model through this very gateway unless told otherwise.
        JUDGE_URL_ENV: args.judge_url
        or os.environ.get(JUDGE_URL_ENV)
        or own_url(host, port, scheme),
    }
    server.run_gateway(
        env=env,
        host=host,
        port=port,
        workers=1,
        max_body_bytes=gateway.max_body_bytes,
        tls=tls,
    )
    return 0


def control(args: argparse.Namespace) -> int:
    from muxgate.gateway import server  # noqa: PLC0415
    from muxgate.store import StoreError  # noqa: PLC0415

    token = os.environ.get(ADMIN_TOKEN_ENV)
    if not token:
        return fail(f"set {ADMIN_TOKEN_ENV} to the admin token the admin API must require")
    try:
        asyncio.run(check_store(args.database))
    except StoreError as exc:
        return fail(str(exc))
    env = {"MUXGATE_DATABASE": args.database, "MUXGATE_REDIS": args.redis}
    if args.consumer:
        env["MUXGATE_CONSUMER"] = args.consumer
    if args.judge_url:
        env[JUDGE_URL_ENV] = args.judge_url
    try:
        tls = server.TLS.of(args.tls_cert, args.tls_key)
    except ValueError as exc:
        return fail(str(exc))
    server.run_control(env=env, host=args.host, port=args.port, tls=tls)
    return 0


def gateway(args: argparse.Namespace) -> int:
    from muxgate.gateway import server  # noqa: PLC0415

    env = {
        "MUXGATE_MODE": "redis",
        "MUXGATE_REDIS": args.redis,
        "MUXGATE_SPILL_DIR": str(Path(args.spill_dir).resolve()),
    }
    if args.usage_queue_bytes is not None:
        if args.usage_queue_bytes < 1:
            return fail("--usage-queue-bytes must be positive")
        env["MUXGATE_USAGE_QUEUE_BYTES"] = str(args.usage_queue_bytes)
    try:
        tls = server.TLS.of(args.tls_cert, args.tls_key)
    except ValueError as exc:
        return fail(str(exc))
    server.run_gateway(
        env=env,
        host=args.host,
        port=args.port,
        workers=args.workers,
        max_body_bytes=args.max_body_bytes,
        tls=tls,
    )
    return 0


def config_import(args: argparse.Namespace) -> int:
    from muxgate.store import StoreError  # noqa: PLC0415

    try:
        cfg = configuration.load(args.file)
        if args.database is None:
            make_data_dir(args.data_dir)
        warnings, version = asyncio.run(import_into(database_of(args), cfg, compile_routing=True))
    except (configuration.ConfigError, StoreError) as exc:
        return fail(str(exc))
    warn(warnings)
    print(
        f"imported {args.file} as routing snapshot {version}; a running control plane "
        "publishes it within a second"
    )
    return 0


def config_export(args: argparse.Namespace) -> int:
    from muxgate.store import Store, StoreError  # noqa: PLC0415
    from muxgate.store.config_io import export_config  # noqa: PLC0415

    async def export() -> str:
        # Reading a mistyped SQLite path must not export the defaults of a new, empty store.
        store = await Store.open(database_of(args), create=False)
        try:
            return await export_config(store)
        finally:
            await store.close()

    if args.database is None:
        path = Path(args.data_dir).resolve() / STORE_FILE
        if not path.exists():
            return fail(
                f"no store at {path}: `muxgate serve` creates it in its data directory "
                f"({args.data_dir} here); give --data-dir or --database to read another"
            )
    try:
        text = asyncio.run(export())
    except StoreError as exc:
        return fail(str(exc))
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def mock_provider(args: argparse.Namespace) -> int:
    run(config_path=args.config, host=args.host, port=args.port, threads=args.threads)
    return 0


def tls_options(parser: argparse.ArgumentParser, default: str = "") -> None:
    parser.add_argument(
        "--tls-cert", help=f"serve HTTPS with this PEM certificate (chain) {default}".strip()
    )
    parser.add_argument("--tls-key", help="the PEM private key of --tls-cert")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="muxgate", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("serve", help="run everything in one process (no external services)")
    p.add_argument(
        "--config", help="TOML configuration; without it a demo with a mock provider runs"
    )
    p.add_argument("--host", help="listen address (default from config, else 127.0.0.1)")
    p.add_argument("--port", type=int, help="listen port (default from config, else 8080)")
    p.add_argument("--workers", type=int, help="must be 1 in embedded mode")
    p.add_argument(
        "--data-dir",
        default=DEFAULT_DATA_DIR,
        help=f"state directory (default {DEFAULT_DATA_DIR}): the SQLite store {STORE_FILE}, "
        "the admin token, the demo key",
    )
    p.add_argument(
        "--database",
        metavar="URL",
        help=f"store to use instead of the data directory's SQLite file: {DATABASE_FORMS}",
    )
    p.add_argument(
        "--judge-url",
        help="gateway the hallucination judge asks its model through (default $MUXGATE_JUDGE_URL, "
        "else this gateway); the judge's API key comes from $MUXGATE_JUDGE_KEY",
    )
    tls_options(p, "(default [gateway] tls_cert / tls_key of --config)")
    p.set_defaults(func=serve)

    p = commands.add_parser("control", help="run the control plane (admin API, metering)")
    p.add_argument("--database", metavar="URL", required=True, help=f"the store: {DATABASE_FORMS}")
    p.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8081)
    p.add_argument(
        "--consumer",
        help="name in the usage consumer group, kept across restarts so a restarted control "
        "plane resumes the usage it had not acknowledged (default: the host name; give each "
        "control plane on one host its own)",
    )
    p.add_argument(
        "--judge-url",
        help="a gateway's base URL (http://host:port) the hallucination judge asks its model "
        "through (default $MUXGATE_JUDGE_URL); the judge's API key comes from $MUXGATE_JUDGE_KEY",
    )
    tls_options(p)
    p.set_defaults(func=control)

    p = commands.add_parser("gateway", help="run gateway workers fed by Redis")
    p.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument(
        "--spill-dir",
        default=".muxgate/spill",
        help="where usage waits on disk while Redis is unreachable",
    )
    p.add_argument(
        "--usage-queue-bytes",
        type=int,
        help="usage each worker keeps in memory while Redis is unreachable before it spills "
        "to the spill directory (default $MUXGATE_USAGE_QUEUE_BYTES, else 64 MiB)",
    )
    p.add_argument("--max-body-bytes", type=int, default=10 * 1024 * 1024)
    tls_options(p)
    p.set_defaults(func=gateway)

    p = commands.add_parser("config", help="import or export the configuration as TOML")
    config_commands = p.add_subparsers(dest="config_command", required=True)
    c = config_commands.add_parser("import", help="create or update what a TOML file declares")
    c.add_argument("file")
    add_database_options(c, "imports into")
    c.set_defaults(func=config_import)
    c = config_commands.add_parser("export", help="write the stored configuration as TOML")
    add_database_options(c, "exports")
    c.add_argument("--output", "-o", help="file to write (default: standard output)")
    c.set_defaults(func=config_export)

    p = commands.add_parser(
        "mock-provider", help="run the mock provider (OpenAI, Anthropic and Gemini APIs)"
    )
    p.add_argument("--config", help="TOML file scripting per-model behaviour")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9090)
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(func=mock_provider)

    args = parser.parse_args(argv)
    try:
        result: int = args.func(args)
    except KeyboardInterrupt:
        # A Ctrl-C before the server took signals over (or while the demo is set up).
        return 130
    return result


if __name__ == "__main__":
    sys.exit(main())
