"""Where a provider's secrets may come from: the workers' environment (`credential_env` and
`headers_env`, which name variables) or the encrypted credential, never a field that is stored,
exported or shown in clear. The TOML file and the store both check with these, so they refuse
the same things with the same words, and no message repeats the value it refuses."""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlsplit

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,199}$")
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,200}$")


def base_url_problem(url: str) -> str | None:
    """Why `url` cannot be a provider's base URL, or None when it can."""
    if not url.startswith(("http://", "https://")):
        return "must start with http:// or https://"
    try:
        netloc = urlsplit(url).netloc
    except ValueError:
        return "is not a valid URL"
    if "@" in netloc:
        return (
            "must not carry credentials (user:password@): name an environment variable "
            "in credential_env or headers_env instead"
        )
    return None


def headers_env_problem(headers_env: Mapping[str, str]) -> tuple[str, str] | None:
    """(header, why) for the first entry of `headers_env` (header name -> name of the
    environment variable holding its value) that cannot be used, or None."""
    for header, env in headers_env.items():
        if not HEADER_NAME.match(header):
            return header, "is not a valid header name"
        if not ENV_NAME.match(env):
            return header, "must name an environment variable (letters, digits, _)"
    return None
