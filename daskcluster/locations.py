"""Where data live: a path of this machine or an fsspec URL — one rule for the whole package.

A location is a URL when it names a protocol (``s3://``, ``gs://``, ``memory://``,
``file://`` …); anything else is a path of the machine that reads it.
"""

from __future__ import annotations

import os

__all__ = ["is_url", "local_path"]

_LOCAL_SCHEMES = ("file://", "local://")


def is_url(location: str | os.PathLike[str]) -> bool:
    """Whether ``location`` is an fsspec URL (it names a protocol) rather than a plain path."""
    return "://" in os.fspath(location)


def local_path(location: str | os.PathLike[str]) -> str | None:
    """The path of this machine that ``location`` names: a plain path as it is, a ``file://`` or
    ``local://`` URL without its scheme; None for any other URL (an object store)."""
    text = os.fspath(location)
    for scheme in _LOCAL_SCHEMES:
        if text.startswith(scheme):
            return text[len(scheme):]
    return None if is_url(text) else text
