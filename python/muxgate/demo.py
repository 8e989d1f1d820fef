"""The demo configuration `muxgate serve` runs without a config file: a built-in mock provider
behind a few familiar model names, one account and one key, so the gateway answers at once."""

from __future__ import annotations

import secrets
from pathlib import Path

from muxgate.config import (
    AccountSection,
    ChannelSection,
    ConfigFile,
    GatewaySection,
    KeySection,
    ModelSection,
    PriceSection,
    ProviderSection,
)

DEMO_ACCOUNT = "demo"


def demo_key(data_dir: Path) -> str:
    """The demo key, created once per data directory so it survives restarts."""
    path = data_dir / "demo-key"
    if path.exists():
        return path.read_text().strip()
    key = "sk-mux-demo-" + secrets.token_hex(16)
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key


def demo_config(mock_base_url: str, key: str, gateway: GatewaySection) -> ConfigFile:
    def channel(
        cid: str, provider: str, upstream: str, *, weight: int = 1, prompt: str, completion: str
    ) -> ChannelSection:
        return ChannelSection(
            id=cid,
            provider=provider,
            upstream_model=upstream,
            weight=weight,
            price=PriceSection(prompt=prompt, completion=completion),
        )

    return ConfigFile(
        gateway=gateway,
        providers=[
            ProviderSection(id="mock-east", base_url=mock_base_url),
            ProviderSection(id="mock-west", base_url=mock_base_url),
            # The same mock, spoken to in Anthropic's protocol: Claude is reached the way a
            # real Anthropic endpoint would be, and every client protocol translates to it.
            ProviderSection(id="mock-anthropic", base_url=mock_base_url, protocol="anthropic"),
            ProviderSection(id="mock-gemini", base_url=mock_base_url + "beta", protocol="gemini"),
        ],
        models=[
            ModelSection(
                slug="openai/gpt-4o-mini",
                aliases=["gpt-4o-mini"],
                context_length=128_000,
                channels=[
                    channel(
                        "gpt-4o-mini@mock-east",
                        "mock-east",
                        "gpt-4o-mini",
                        weight=3,
                        prompt="0.15",
                        completion="0.60",
                    ),
                    channel(
                        "gpt-4o-mini@mock-west",
                        "mock-west",
                        "gpt-4o-mini",
                        weight=1,
                        prompt="0.15",
                        completion="0.60",
                    ),
                ],
            ),
            ModelSection(
                slug="anthropic/claude-sonnet-4.5",
                aliases=["claude-sonnet-4-5"],
                context_length=200_000,
                channels=[
                    channel(
                        "claude-sonnet-4.5@mock-anthropic",
                        "mock-anthropic",
                        "claude-sonnet-4.5",
                        weight=1,
                        prompt="3",
                        completion="15",
                    ),
                ],
            ),
            ModelSection(
                slug="google/gemini-2.5-flash",
                context_length=1_048_576,
                channels=[
                    channel(
                        "gemini-2.5-flash@mock-gemini",
                        "mock-gemini",
                        "gemini-2.5-flash",
                        weight=1,
                        prompt="0.30",
                        completion="2.50",
                    ),
                ],
            ),
            ModelSection(
                slug="deepseek/deepseek-chat",
                context_length=64_000,
                channels=[
                    channel(
                        "deepseek-chat@mock-west",
                        "mock-west",
                        "deepseek-chat",
                        weight=1,
                        prompt="0.28",
                        completion="0.42",
                    ),
                ],
            ),
        ],
        accounts=[AccountSection(id=DEMO_ACCOUNT)],
        keys=[KeySection(id="demo-key", account=DEMO_ACCOUNT, secret=key)],
    )
