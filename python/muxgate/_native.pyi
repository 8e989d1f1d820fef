"""Type stubs for the native extension; checked against the built module by stubtest."""

import asyncio
from typing import final

__all__ = [
    "VERSION",
    "Engine",
    "MockProvider",
    "Stream",
    "count_chat_tokens",
    "count_tokens",
    "encoding_for_model",
]

VERSION: str

@final
class Engine:
    """The data-plane engine: routing table, upstream pools and the request flow."""

    def __new__(cls) -> Engine: ...
    @property
    def wakeup_fd(self) -> int: ...
    @property
    def routing_version(self) -> int: ...
    def load_snapshot(
        self, data: bytes, credentials: dict[str, str] | None = None
    ) -> list[str]: ...
    def use_redis_limits(self, url: str) -> None:
        """Keep rate-limit buckets in the Redis at `url`, shared by every worker."""
    def route(self, model: str, body: bytes | None = None, repeat: int = 1) -> list[str]:
        """The channel ids a request for `model` would try, in order, under the routing
        fields of `body`; `repeat` decides that many times and returns the last plan."""
    def chat(
        self,
        authorization: str | None,
        api_key: str | None,
        body: bytes,
        future: asyncio.Future[object],
    ) -> None: ...
    def messages(
        self,
        authorization: str | None,
        api_key: str | None,
        anthropic_beta: str | None,
        body: bytes,
        future: asyncio.Future[object],
    ) -> None: ...
    def responses(
        self,
        authorization: str | None,
        api_key: str | None,
        body: bytes,
        future: asyncio.Future[object],
    ) -> None: ...
    def generate_content(
        self,
        model: str,
        stream: bool,
        sse: bool,
        authorization: str | None,
        api_key: str | None,
        body: bytes,
        future: asyncio.Future[object],
    ) -> None: ...
    def count_tokens(
        self, authorization: str | None, api_key: str | None, body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]: ...
    def models(
        self, authorization: str | None, api_key: str | None, protocol: str = "openai"
    ) -> tuple[int, list[tuple[str, str]], bytes]: ...
    def drain(self) -> None: ...
    def take_usage(self) -> bytes | None: ...

@final
class Stream:
    """An event stream being relayed from a provider."""

    @property
    def headers(self) -> list[tuple[str, str]]: ...
    def read(self) -> bytes | None: ...
    def wait(self, future: asyncio.Future[None]) -> None: ...
    def cancel(self) -> None: ...

@final
class MockProvider:
    """The mock provider (OpenAI, Anthropic, Gemini APIs), serving on its own native thread(s)."""

    def __new__(
        cls, config_json: str, host: str = "127.0.0.1", port: int = 0, threads: int = 1
    ) -> MockProvider: ...
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def base_url(self) -> str: ...
    @property
    def running(self) -> bool: ...
    def set_config(self, config_json: str) -> None: ...
    def config(self) -> str: ...
    def stats(self) -> str: ...
    def stop(self) -> None: ...
    def __enter__(self) -> MockProvider: ...
    def __exit__(self, *args: object) -> None: ...

def count_tokens(text: str, encoding_name: str = "o200k_base") -> int:
    """Exact tokens of `text` in o200k_base or cl100k_base (special tokens as text)."""

def count_chat_tokens(messages_json: bytes, encoding_name: str = "o200k_base") -> int:
    """Prompt tokens of an OpenAI `messages` JSON array, chat framing included."""

def encoding_for_model(model: str) -> str:
    """The encoding OpenAI uses for a model name."""
