"""Writing a space back as TOML (``Space.to_toml``, ``narrow``)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping

from hpsearch.errors import HPSearchError


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key, ensure_ascii=False)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, str):
        # a JSON string is a TOML basic string, once DEL is escaped too
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise HPSearchError(f"cannot write {value!r} to a space file")


def _toml_section(name: str, table: Mapping) -> str:
    width = max((len(_toml_key(k)) for k in table), default=0)
    lines = [f"[{name}]"] + [f"{_toml_key(k):<{width}} = {_toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"
