"""A small TOML writer for the configuration's shape: top-level tables and arrays of tables
(one level of nested arrays of tables), scalar, list and inline-table values."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(key: str) -> str:
    return key if _BARE.match(key) else json.dumps(key, ensure_ascii=False)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        return text if any(c in text for c in ".en") else text + ".0"
    if isinstance(value, str):
        # JSON string escapes are all valid TOML basic-string escapes.
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        inner = ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items() if v is not None)
        return "{ " + inner + " }" if inner else "{}"
    if isinstance(value, Sequence):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _table(header: str, body: Mapping[str, Any], out: list[str]) -> None:
    out.append(header)
    nested: list[tuple[str, list[dict[str, Any]]]] = []
    for key, value in body.items():
        if value is None:
            continue  # TOML has no null: an absent key is the default.
        if _is_table_array(value):
            nested.append((key, value))
        else:
            out.append(f"{_key(key)} = {_value(value)}")
    out.append("")
    name = header.strip("[]")
    for key, items in nested:
        for item in items:
            _table(f"[[{name}.{_key(key)}]]", item, out)


def dumps(document: Mapping[str, Any], header_comment: Sequence[str] = ()) -> str:
    out = [f"# {line}" if line else "#" for line in header_comment]
    if out:
        out.append("")
    for key, value in document.items():
        if isinstance(value, Mapping):
            _table(f"[{_key(key)}]", value, out)
        elif _is_table_array(value):
            for item in value:
                _table(f"[[{_key(key)}]]", item, out)
        elif value == []:
            continue
        else:
            raise TypeError(f"top-level {key!r} must be a table or an array of tables")
    return "\n".join(out).rstrip("\n") + "\n"
