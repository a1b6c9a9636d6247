"""One lookup for every registry: the keys are exactly what users write in TOML."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import TypeVar

from hpsearch.errors import HPSearchError

T = TypeVar("T")


def did_you_mean(name: str, candidates) -> str:
    """``"; did you mean 'relu'?"`` when a close candidate exists, else ``""``."""
    if len(str(name)) > 100:  # nothing that long is a misspelling
        return ""
    folded = {str(c).lower().replace("-", "_"): c for c in candidates}
    same = folded.get(str(name).lower().replace("-", "_"))
    if same is not None and same != name:
        return f"; did you mean {same!r}? (names are lower case)"
    close = difflib.get_close_matches(str(name), [str(c) for c in candidates], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def lookup(registry: Mapping[str, T], name: str, family: str) -> T:
    """Return ``registry[name]``, or raise an error listing the allowed names."""
    try:
        return registry[name]
    except (KeyError, TypeError):
        allowed = ", ".join(sorted(registry))
        shown = repr(name) if len(repr(name)) <= 80 else f"{repr(name)[:60]}… ({len(repr(name)):,} characters)"
        raise HPSearchError(f"unknown {family} {shown} (allowed: {allowed}){did_you_mean(name, registry)}") from None
