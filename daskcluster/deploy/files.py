"""Reading YAML files safely and turning schema errors into one clear line per problem.

Shared by cluster configs (:mod:`daskcluster.deploy`) and jobs (:mod:`daskcluster.jobs`):
YAML is parsed with :func:`yaml.safe_load` only (no Python objects), and a pydantic
validation error becomes ``<file>: key 'a.b': <problem>; got <value>. <fix>`` lines.
"""

from __future__ import annotations

import difflib
import os
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from ..errors import DaskClusterError

__all__ = ["ConfigError", "load_yaml", "parse_model", "SECRET_WORDS"]

M = TypeVar("M", bound=BaseModel)

#: Key names that hold secrets; a file names an environment variable instead (``<key>_env``). The one
#: list: cluster configs, jobs' ``storage_options`` and the redaction of what jobs write all use it
#: (fsspec's ``key``/``secret``/``token``, Azure's ``account_key``/``connection_string``/``sas_token``).
SECRET_WORDS = re.compile(
    r"(password|passwd|secret|token|api_?key|access_key|private_key|account_key|credential|connection_string"
    r"|(^|_)key$)", re.I)


class ConfigError(DaskClusterError, ValueError):
    """A cluster config or job file is not valid: unknown key, wrong type, missing value.

    The message names the file, the key and the fix, one problem per line.
    """


class _UniqueKeyLoader(yaml.SafeLoader):
    """The safe loader, refusing a key given twice in one mapping (YAML would keep the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            try:
                key = self.construct_object(key_node, deep=True)
                hash(key)
            except TypeError:
                continue  # an unhashable key: the base class reports it
            if key == "<<" and key_node.tag == "tag:yaml.org,2002:merge":
                continue
            if key in seen:
                first = seen[key].start_mark
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    f"the key {key!r} is given twice (first on line {first.line + 1}); YAML would silently "
                    "keep the last value. Keep one", key_node.start_mark,
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


#: The most nodes a YAML document may hold once its aliases are expanded: a job or a config is
#: a few hundred; aliases nested to expand past this ("billion laughs") are refused before
#: anything is built from them.
MAX_YAML_NODES = 100_000


def _expanded_nodes(root: yaml.Node) -> int:
    """Nodes of the document with every alias expanded, counted without expanding anything
    (an alias is the same node object as its anchor: each node's count is computed once)."""
    counts: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in counts:
            continue
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        else:
            children = []
        if children_done:
            counts[id(node)] = min(1 + sum(counts.get(id(c), 0) for c in children), MAX_YAML_NODES + 1)
            continue
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in counts)
    return counts[id(root)]


def safe_load(stream: Any) -> Any:
    """:func:`yaml.safe_load`, with a key given twice in one mapping an error, and a document whose
    aliases expand past :data:`MAX_YAML_NODES` nodes refused before it is built."""
    loader = _UniqueKeyLoader(stream)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        n = _expanded_nodes(node)
        if n > MAX_YAML_NODES:
            raise yaml.constructor.ConstructorError(
                None, None, f"its aliases (*name) expand to more than {MAX_YAML_NODES:,} values; a job or a "
                "cluster config needs a few hundred. Write the values out, or use fewer nested aliases",
                node.start_mark)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def load_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse a YAML file with the safe loader; the top level must be a mapping, and a key given
    twice in one mapping is an error (YAML itself would keep the last value silently)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such file.")
    try:
        with open(p, encoding="utf-8") as f:
            doc = safe_load(f)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{p}: not valid YAML{where}: {problem}.") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not a UTF-8 text file ({exc.reason}).") from None
    if doc is None:
        raise ConfigError(f"{p}: the file is empty.")
    if not isinstance(doc, dict):
        raise ConfigError(f"{p}: the top level must be a mapping of keys to values; got a {type(doc).__name__}.")
    return doc


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _submodels(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models inside a field annotation (through Optional, Union, list, dict)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _submodels(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType, list, tuple, dict, Mapping):
        for arg in typing.get_args(annotation):
            found += _submodels(arg)
    return found


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str] | None:
    """The keys allowed in the mapping at ``loc`` (the parent of an unknown key)."""
    candidates: list[type[BaseModel]] = [model]
    for part in loc:
        if isinstance(part, int):
            continue
        nxt: list[type[BaseModel]] = []
        for m in candidates:
            for name, field in m.model_fields.items():
                if part in (name, field.alias):
                    nxt += _submodels(field.annotation)
        if not nxt:
            return None
        candidates = nxt
    keys: set[str] = set()
    for m in candidates:
        keys.update(field.alias or name for name, field in m.model_fields.items())
    return sorted(keys)


def _problem(model: type[BaseModel], err: Mapping[str, Any], prefix: tuple[Any, ...] = ()) -> str:
    loc = tuple(err.get("loc", ()))
    kind = err.get("type", "")
    key = _dotted(prefix + loc)
    if kind == "extra_forbidden":
        name = str(loc[-1])
        parent = _dotted(prefix + loc[:-1])
        allowed = _allowed_keys(model, loc[:-1]) or []
        where = f" under '{parent}'" if parent else ""
        if SECRET_WORDS.search(name) and not name.endswith(("_env", "_file")):
            return (f"key '{key}': secrets never sit in these files. Put the value in an environment "
                    f"variable and name that variable instead (e.g. '{name}_env: MY_VARIABLE').")
        close = difflib.get_close_matches(name, allowed, n=1)
        fix = f"Did you mean '{close[0]}'?" if close else f"Allowed keys{where}: {', '.join(allowed)}."
        return f"unknown key '{key}'. {fix}"
    if kind == "missing":
        return f"missing required key '{key}'. Add it."
    msg = str(err.get("msg", "invalid value"))
    msg = msg.removeprefix("Value error, ")
    value = err.get("input")
    prefix_text = f"key '{key}'" if key else "top level"
    if kind.startswith("model_") or kind == "value_error" and isinstance(value, dict):
        return f"{prefix_text}: {msg}."  # a rule between keys: the keys are named in the message
    shown = f"a {type(value).__name__}" if isinstance(value, (dict, list)) and len(repr(value)) > 80 else repr(value)
    fix = ""
    if isinstance(value, str) and kind in ("int_type", "float_type", "bool_type", "int_parsing", "float_parsing"):
        fix = " Write the value without quotes."
    return f"{prefix_text}: {msg}; got {shown}.{fix}"


_TYPE_TAGS = frozenset({"bool", "int", "float", "str", "list", "dict", "tuple", "none", "bytes", "set"})


def _is_union_tag(part: Any) -> bool:
    """Whether a location part names a branch of a union ('bool', "literal['auto']", 'LabelsSpec')
    rather than a key: such parts are dropped so that messages name keys only."""
    return isinstance(part, str) and (
        "[" in part or part in _TYPE_TAGS or re.match(r"^[A-Z][a-z]", part) is not None
    )


def _merge_union_errors(errors: list[Any]) -> list[dict[str, Any]]:
    """One error per key: the branches of a union ('a valid boolean' or "'auto'") become one."""
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for err in errors:
        loc = tuple(p for p in err.get("loc", ()) if not _is_union_tag(p))
        if loc in merged:
            first = merged[loc]
            if err["msg"] not in first["msg"] and first["type"] not in ("extra_forbidden", "missing"):
                first["msg"] = f"{first['msg']}, or {err['msg'][0].lower()}{err['msg'][1:]}"
            continue
        merged[loc] = {**err, "loc": loc}
    return list(merged.values())


def validation_problems(model: type[M], data: Any, prefix: tuple[Any, ...] = ()) -> tuple[M | None, list[str]]:
    """Validate ``data`` with ``model``; the object, or None and one message per problem.

    ``prefix`` is the location of ``data`` inside its file (e.g. ``("data",)``), for the messages.
    """
    if not isinstance(data, Mapping):
        where = f"key '{_dotted(prefix)}'" if prefix else "top level"
        return None, [f"{where}: expected a mapping of keys to values; got {data!r}."]
    try:
        return model.model_validate(dict(data)), []
    except ValidationError as exc:
        return None, [_problem(model, e, prefix) for e in _merge_union_errors(exc.errors())]


def parse_model(model: type[M], data: Mapping[str, Any], source: str, prefix: tuple[Any, ...] = ()) -> M:
    """Validate ``data`` with ``model``; raise :class:`ConfigError` naming ``source`` and the keys."""
    obj, problems = validation_problems(model, data, prefix)
    if obj is None:
        raise ConfigError("\n".join(f"{source}: {p}" for p in problems))
    return obj


def apply_overrides(doc: dict[str, Any], overrides: list[str] | tuple[str, ...], source: str) -> dict[str, Any]:
    """Apply ``key.sub=value`` overrides (values parsed as YAML) to a copy of ``doc``."""
    import copy

    out = copy.deepcopy(doc)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. --set model.params.n_clusters=20.")
        key, _, text = item.partition("=")
        parts = [p for p in key.strip().split(".")]
        if not all(parts):
            raise ConfigError(f"--set {item!r}: the key {key!r} has an empty part.")
        try:
            value = safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            value = text
        node: Any = out
        for i, part in enumerate(parts[:-1]):
            nxt = node.get(part) if isinstance(node, dict) else None
            if nxt is None:
                nxt = {}
                node[part] = nxt
            if not isinstance(nxt, dict):
                raise ConfigError(
                    f"--set {item!r}: '{'.'.join(parts[:i + 1])}' in {source} is a {type(nxt).__name__}, "
                    "not a mapping; cannot set a key inside it."
                )
            node = nxt
        node[parts[-1]] = value
    return out
