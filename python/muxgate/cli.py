"""`muxgate` command line: `serve` (embedded gateway) and `mock-provider`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from muxgate import __version__
from muxgate import config as configuration
from muxgate.demo import demo_config, demo_key
from muxgate.gateway import server
from muxgate.mock import MockConfig, run, start

BANNER = """\
muxgate {version} — embedded mode
  OpenAI endpoint  http://{host}:{port}/api/v1   (alias http://{host}:{port}/v1)
  models           {models}
  data directory   {data_dir}   (usage events in usage.jsonl)
{demo}"""

DEMO = """\
  demo provider    built-in mock at {mock_url}
  demo API key     {key}

  curl http://{host}:{port}/api/v1/chat/completions \\
    -H "Authorization: Bearer {key}" -H "Content-Type: application/json" \\
    -d '{{"model": "openai/gpt-4o-mini", "messages": [{{"role": "user", "content": "Hello"}}]}}'
"""


def serve(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    demo = ""
    mock = None
    if args.config:
        try:
            cfg = configuration.load(args.config)
        except configuration.ConfigError as exc:
            print(f"muxgate: {exc}", file=sys.stderr)
            return 2
    else:
        mock = start(MockConfig(), host="127.0.0.1", port=0, threads=1)
        mock_url = f"http://127.0.0.1:{mock.port}/v1"
        key = demo_key(data_dir)
        cfg = demo_config(mock_url, key, configuration.GatewaySection())
    gateway = cfg.gateway
    host = args.host or gateway.host
    port = args.port if args.port is not None else gateway.port
    if mock is not None:
        demo = DEMO.format(mock_url=mock_url, key=key, host=host, port=port)
    workers = args.workers or gateway.workers
    try:
        snapshot = configuration.compile_snapshot(cfg, version=1)
    except configuration.ConfigError as exc:
        print(f"muxgate: {exc}", file=sys.stderr)
        return 2
    snapshot_path = data_dir / "snapshot.msgpack"
    snapshot_path.write_bytes(snapshot.encode())
    print(
        BANNER.format(
            version=__version__,
            host=host,
            port=port,
            models=", ".join(m.slug for m in cfg.models) or "(none)",
            data_dir=data_dir,
            demo=demo,
        ),
        flush=True,
    )
    try:
        server.run(
            snapshot_path=snapshot_path,
            usage_log=data_dir / "usage.jsonl",
            host=host,
            port=port,
            workers=workers,
            max_body_bytes=gateway.max_body_bytes,
        )
    finally:
        if mock is not None:
            mock.stop()
    return 0


def mock_provider(args: argparse.Namespace) -> int:
    run(config_path=args.config, host=args.host, port=args.port, threads=args.threads)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="muxgate", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("serve", help="run the gateway in embedded mode (no external services)")
    p.add_argument(
        "--config", help="TOML configuration; without it a demo with a mock provider runs"
    )
    p.add_argument("--host", help="listen address (default from config, else 127.0.0.1)")
    p.add_argument("--port", type=int, help="listen port (default from config, else 8080)")
    p.add_argument("--workers", type=int, help="gateway worker processes")
    p.add_argument("--data-dir", default=".muxgate", help="state directory (default .muxgate)")
    p.set_defaults(func=serve)

    p = commands.add_parser("mock-provider", help="run the mock OpenAI-compatible provider")
    p.add_argument("--config", help="TOML file scripting per-model behaviour")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9090)
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(func=mock_provider)

    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
