"""Secrets a job uses and never writes: credentials of its storage.

A job file never holds a secret. A ``storage_options`` key that names one
(:data:`daskcluster.deploy.files.SECRET_WORDS`, the one list) is refused; ``<key>_env: VARIABLE``
names the environment variable that holds it instead, read only when the data are opened::

    data: {kind: zarr, path: "s3://bucket/x.zarr",
           storage_options: {key_env: AWS_ACCESS_KEY_ID, secret_env: AWS_SECRET_ACCESS_KEY}}

The values read are remembered in this process, and everything a job writes or logs goes
through :func:`scrub` (``job.yaml``, ``metrics.json``, ``job.log`` and the messages sent to the
scheduler): a value that would appear there is replaced by ``***``. :func:`redact` also blanks
the value of any secret-named key of a mapping before it is written.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from typing import Any

from ..deploy.files import SECRET_WORDS, ConfigError

__all__ = ["MASK", "RedactingFilter", "is_secret_key", "redact", "resolve_storage_options", "scrub"]

MASK = "***"

_lock = threading.Lock()
_values: set[str] = set()


def is_secret_key(name: str) -> bool:
    """Whether a key names a secret (the ``_env`` form names a variable, not a secret)."""
    return SECRET_WORDS.search(name) is not None and not name.endswith("_env")


def resolve_storage_options(options: Mapping[str, Any], where: str = "data.storage_options") -> dict[str, Any]:
    """``storage_options`` with every ``<key>_env: VARIABLE`` replaced by ``<key>: $VARIABLE``.

    The values read are remembered for :func:`scrub`.

    Raises
    ------
    ConfigError
        A variable is not set (the message names the key and the variable, never a value).
    """
    out: dict[str, Any] = {}
    for key, value in options.items():
        if not key.endswith("_env"):
            out[key] = value
            continue
        secret = os.environ.get(str(value))
        if secret is None:
            raise ConfigError(f"key '{where}.{key}' names the environment variable {value}, which is not set "
                              "here. Set it (on every machine that reads the data).")
        with _lock:
            if len(secret) >= 4:  # shorter values would blank ordinary words
                _values.add(secret)
        out[key.removesuffix("_env")] = secret
    return out


def scrub(text: str) -> str:
    """``text`` with every secret value read by this process replaced by ``***``."""
    with _lock:
        values = sorted(_values, key=len, reverse=True)
    for value in values:
        if value in text:
            text = text.replace(value, MASK)
    return text


def redact(value: Any) -> Any:
    """A copy of ``value`` (mappings, lists, strings) with secret-named keys' values blanked and
    secret values scrubbed from the strings."""
    if isinstance(value, Mapping):
        return {k: (MASK if isinstance(k, str) and is_secret_key(k) else redact(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact(v) for v in value)
    if isinstance(value, str):
        return scrub(value)
    return value


class RedactingFilter(logging.Filter):
    """Scrub secret values from log records before any handler formats them."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = scrub(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            text = str(record.exc_info[1])
            if scrub(text) != text:  # the traceback would show the value: keep the message only
                record.msg = f"{record.msg} ({type(record.exc_info[1]).__name__}: {scrub(text)})"
                record.exc_info = None
                record.exc_text = None
        return True
