"""The documentation stays true to the code.

Every ``daskcluster/...`` path and every dotted ``daskcluster.x.y`` name the pages of ``docs/``
cite must exist (a file, a folder, a module, or a name a module defines or imports); in
``docs/architecture.md`` also the shorter forms it uses (``engine/tree.py``, ``_linkage.py``,
``tree.PartialTree``, ``KdPlan.to_arrays``). And the import rules ``docs/architecture.md``
states hold. All of it is read statically: the modules are parsed with :mod:`ast`, never
imported, so the check is fast and sees every module whatever its optional dependencies.
"""

from __future__ import annotations

import ast
import fnmatch
import functools
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "daskcluster"
DOCS = sorted((ROOT / "docs").glob("*.md"))
ARCHITECTURE = ROOT / "docs" / "architecture.md"

#: Folders at the repository's root whose files the pages cite by path.
REPO_FOLDERS = ("daskcluster", "docs", "tests", "benchmarks", "cluster_configs", "workflows")

IDENTIFIER = r"[A-Za-z_]\w*"
#: ``daskcluster.a.b`` anywhere in a page (not a configuration key such as ``daskcluster.read-ahead``,
#: nor part of a path or a file name such as ``~/.daskcluster/x`` or ``daskcluster.yaml``).
DOTTED = re.compile(rf"(?<![\w./-])daskcluster(?:\.{IDENTIFIER})+(?![\w-])")
#: ``daskcluster/...`` anywhere in a page (not inside a URL or another path).
PATH = re.compile(r"(?<![\w./:-])daskcluster/[\w./*-]*")
#: What ends a file's name, not a dotted name (``io_sparse.py``, ``model.zip``).
FILE_SUFFIXES = {"py", "md", "yaml", "yml", "json", "npy", "npz", "zip", "zarr", "png", "csv", "txt", "parquet"}
CODE_SPAN = re.compile(r"`([^`\n]+)`")
#: Names a page writes as ``file.attribute`` that are not daskcluster's modules or classes.
NOT_OURS = {"client", "exc", "da", "dask", "np", "self", "zarr", "sklearn", "scipy"}


def _python_files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _relative_names() -> list[str]:
    """Every file and folder of the package, as a path relative to the repository
    (folders end with ``/``)."""
    names = []
    for p in PACKAGE.rglob("*"):
        if "__pycache__" in p.parts or p.name.startswith("."):
            continue
        rel = p.relative_to(ROOT).as_posix()
        names.append(rel + "/" if p.is_dir() else rel)
    return names


RELATIVE = _relative_names()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in _python_files()}


@functools.cache
def _source() -> str:
    """The text of every module of the package."""
    return "\n".join(p.read_text(encoding="utf-8") for p in _python_files())


@functools.cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _top_level(body: list[ast.stmt]) -> list[ast.stmt]:
    """The statements of a module or class body, with those inside ``if``/``try``/``with``
    blocks (``if TYPE_CHECKING:``, optional imports), not those inside functions."""
    out: list[ast.stmt] = []
    for node in body:
        out.append(node)
        if isinstance(node, ast.If):
            out += _top_level(node.body) + _top_level(node.orelse)
        elif isinstance(node, ast.Try):
            out += _top_level(node.body) + _top_level(node.orelse) + _top_level(node.finalbody)
            for handler in node.handlers:
                out += _top_level(handler.body)
        elif isinstance(node, ast.With):
            out += _top_level(node.body)
    return out


def _targets(node: ast.expr) -> list[str]:
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, (ast.Tuple, ast.List)):
        return [n for elt in node.elts for n in _targets(elt)]
    return []


def _resolve_relative(module: str, is_package: bool, level: int, target: str | None) -> str:
    """The absolute module of ``from <level dots><target> import ...`` written in ``module``."""
    if not level:
        return target or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


@functools.cache
def _definitions(module: str) -> dict[str, tuple[str, str] | ast.AST]:
    """The names module ``module`` defines: each maps to its definition's node, or, for a name
    it imports or loads lazily (``_lazy.attach``), to ``(module, name)`` where it comes from."""
    path = MODULES[module]
    is_package = path.name == "__init__.py"
    names: dict[str, tuple[str, str] | ast.AST] = {}
    for node in _top_level(_tree(path).body):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names[node.name] = node
            if node.name == "__getattr__":  # PEP 562: the names it compares ``name`` with
                for sub in ast.walk(node):
                    if (isinstance(sub, ast.Compare) and isinstance(sub.ops[0], ast.Eq)
                            and isinstance(sub.comparators[0], ast.Constant)):
                        names.setdefault(str(sub.comparators[0].value), sub)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                for name in _targets(target):
                    names[name] = node
            lazy = node.value
            if isinstance(lazy, ast.Call) and getattr(lazy.func, "id", None) == "attach" and len(lazy.args) > 1:
                table = lazy.args[1]
                if isinstance(table, ast.Dict):
                    for key, value in zip(table.keys, table.values):
                        if isinstance(key, ast.Constant) and isinstance(value, ast.Constant):
                            source = str(value.value)
                            if source.startswith("."):
                                source = module + source
                            names.setdefault(str(key.value), (source, str(key.value)))
        elif isinstance(node, ast.AnnAssign):
            for name in _targets(node.target):
                names[name] = node
        elif isinstance(node, ast.Import):
            for alias in node.names:
                names[alias.asname or alias.name.split(".")[0]] = (alias.name, "")
        elif isinstance(node, ast.ImportFrom):
            source = _resolve_relative(module, is_package, node.level, node.module)
            for alias in node.names:
                names[alias.asname or alias.name] = (source, alias.name)
    return names


@functools.cache
def _class_attributes(node: ast.ClassDef) -> frozenset[str]:
    """The names a class body defines, and the ``self.x`` its methods assign."""
    names: set[str] = set()
    for stmt in _top_level(node.body):
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(stmt.name)
        elif isinstance(stmt, ast.Assign):
            names.update(n for t in stmt.targets for n in _targets(t))
        elif isinstance(stmt, ast.AnnAssign):
            names.update(_targets(stmt.target))
    for sub in ast.walk(node):
        if isinstance(sub, ast.Attribute) and isinstance(sub.ctx, ast.Store) and getattr(sub.value, "id", "") == "self":
            names.add(sub.attr)
    return frozenset(names)


def _lookup(module: str, name: str, depth: int = 0) -> tuple[str, ast.AST] | str | None:
    """Where ``name`` of ``module`` is defined: ``(module, node)``, a module's name for a
    submodule or an imported module, ``"external"`` for a name from outside the package, or None."""
    if depth > 10:
        return None
    if f"{module}.{name}" in MODULES:
        return f"{module}.{name}"
    found = _definitions(module).get(name)
    if found is None:
        return None
    if isinstance(found, tuple):
        source, attr = found
        if not source.startswith("daskcluster"):
            return "external"
        if not attr:
            return source if source in MODULES else None
        if source in MODULES:
            return _lookup(source, attr, depth + 1)
        return None
    return module, found


def _class_has(module: str, node: ast.ClassDef, attr: str, depth: int = 0) -> bool:
    """Whether the class, or one of its bases, has ``attr``; a base from outside the package
    (scikit-learn's, the standard library's) is taken to have it."""
    if attr in _class_attributes(node) or depth > 10:
        return True
    for base in node.bases:
        base_name = base.id if isinstance(base, ast.Name) else getattr(base, "attr", None)
        if base_name is None:
            continue
        where = _lookup(module, base_name)
        if where == "external" or where is None:
            return True
        if isinstance(where, tuple) and isinstance(where[1], ast.ClassDef) and _class_has(
                where[0], where[1], attr, depth + 1):
            return True
    return False


def _name_exists(module: str, attrs: list[str]) -> bool:
    """Whether ``module.attrs[0].attrs[1]...`` exists (modules, their names, class attributes)."""
    current: tuple[str, ast.AST] | str = module
    for attr in attrs:
        if isinstance(current, str):
            if current == "external" or current not in MODULES:
                return current == "external"
            found = _lookup(current, attr)
            if found is None:
                return False
            current = found
        else:
            where, node = current
            if isinstance(node, ast.ClassDef):
                return _class_has(where, node, attr)
            return False  # an attribute of a function or a constant: not checked, so refused
    return True


def dotted_exists(dotted: str) -> bool:
    """Whether ``daskcluster.a.b.c`` names a module of the package or something one defines."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        module = ".".join(parts[:i])
        if module in MODULES:
            return _name_exists(module, parts[i:])
    return False


def path_exists(path: str) -> bool:
    """Whether a repository path (a file, a folder, or a glob) exists."""
    path = path.rstrip(".,;:")
    return any(ROOT.glob(path)) if "*" in path else (ROOT / path).exists()


def suffix_exists(path: str) -> bool:
    """Whether some file or folder of the package ends with ``path`` (``engine/tree.py``,
    ``_linkage.py``, ``dbscan/``, ``_nmf*.py``)."""
    return any(fnmatch.fnmatchcase("/" + name, "*/" + path) for name in RELATIVE)


def short_name_exists(first: str, rest: list[str]) -> bool:
    """``tree.PartialTree``, ``_lazy.import_without``, ``KdPlan.to_arrays``: a module of the
    package named ``first`` (by its last component) with ``rest``, or a class named ``first``
    with attribute ``rest``."""
    for module in MODULES:
        if module.rsplit(".", 1)[-1] == first and _name_exists(module, rest):
            return True
        defined = _definitions(module).get(first)
        if isinstance(defined, ast.ClassDef) and len(rest) == 1 and _class_has(module, defined, rest[0]):
            return True
    return False


def _cited(text: str) -> tuple[set[str], set[str]]:
    return set(DOTTED.findall(text)), {p.rstrip(".,;:") for p in PATH.findall(text)}


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.name)
def test_cited_modules_and_names_exist(page: Path) -> None:
    dotted, paths = _cited(page.read_text(encoding="utf-8"))
    assert [d for d in sorted(dotted) if not dotted_exists(d)] == []
    assert [p for p in sorted(paths) if not path_exists(p)] == []


SUBPACKAGES = tuple(sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()))


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.name)
def test_cited_repository_paths_exist(page: Path) -> None:
    """``tests/test_x.py``, ``benchmarks/bench_x.py``, ``engine/passes.py`` in code spans."""
    missing = []
    for span in CODE_SPAN.findall(page.read_text(encoding="utf-8")):
        if not re.fullmatch(r"[\w.*-]+/[\w./*-]*\.(py|md)", span):
            continue
        top = span.split("/")[0]
        if (top in REPO_FOLDERS and not path_exists(span)) or (top in SUBPACKAGES and not suffix_exists(span)):
            missing.append(span)
    assert missing == []


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.name)
def test_cited_configuration_keys_exist(page: Path) -> None:
    """``daskcluster.read-ahead``, ``daskcluster.min-chunks``: Dask configuration keys the code reads."""
    source = _source()
    keys = set(re.findall(r"(?<![\w./-])daskcluster\.[a-z]+(?:-[a-z]+)+", page.read_text(encoding="utf-8")))
    assert [k for k in sorted(keys) if f'"{k}"' not in source] == []


def _architecture_spans() -> list[str]:
    return CODE_SPAN.findall(ARCHITECTURE.read_text(encoding="utf-8"))


def test_architecture_short_paths_exist() -> None:
    """``engine/tree.py``, ``kernels/mixture/covariance/``, ``_two_phase.py``, ``docs/jobs.md``."""
    missing = []
    for span in _architecture_spans():
        if not re.fullmatch(r"[\w./*-]+(\.py|\.md|/)", span) or "://" in span:
            continue
        if span.split("/")[0] in REPO_FOLDERS:
            ok = path_exists(span)
        else:
            ok = suffix_exists(span)
        if not ok:
            missing.append(span)
    assert missing == []


def test_architecture_names_every_module() -> None:
    """Which module does what: every module of the package (but the packages' ``__init__.py``) is
    cited by a path its own path ends with (``engine/tree.py``, ``_two_phase.py``, ``daskcluster/io.py``),
    so a new or renamed module shows here until the page says what it holds."""
    cited = [span for span in _architecture_spans() if re.fullmatch(r"[\w./*-]+\.py", span)]
    unnamed = [path.relative_to(ROOT).as_posix() for path in _python_files() if path.name != "__init__.py"
               and not any(fnmatch.fnmatchcase("/" + path.relative_to(ROOT).as_posix(), "*/" + span) for span in cited)]
    assert unnamed == []


def test_architecture_short_names_exist() -> None:
    """``tree.above_groups``, ``passes.runs_of``, ``RowData.nbytes``, ``params.parameter_errors(...)``."""
    missing = []
    for span in _architecture_spans():
        m = re.fullmatch(rf"({IDENTIFIER}(?:\.{IDENTIFIER})+)(\(.*\))?", span)
        if m is None:
            continue
        first, *rest = m.group(1).split(".")
        if first == "daskcluster" or first in NOT_OURS or rest[-1] in FILE_SUFFIXES:
            continue
        if not short_name_exists(first, rest):
            missing.append(span)
    assert missing == []


#: ``passes.py``: ``tree_reduce``, ``map_rows``: a module and the names the page says it holds.
MODULE_AND_NAMES = re.compile(r"`([\w/]+\.py)`:\s*((?:`\w+(?:\([^`]*\))?`(?:,\s*(?:and\s+)?|\s+and\s+|\s+or\s+)?)+)")


def _holds(module: str, name: str) -> bool:
    """Whether ``module`` defines ``name`` (at its top level) or sets an attribute of that name."""
    if name in _definitions(module):
        return True
    return any(isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store) and n.attr == name
               for n in ast.walk(_tree(MODULES[module])))


def test_architecture_names_are_where_it_says() -> None:
    """``(`deployment.py`: `deploy`, `Deployment`, `load_config`)``: each name is defined in a
    module of that path, so a function moved to another module shows here."""
    pairs = [(path, name) for m in MODULE_AND_NAMES.finditer(ARCHITECTURE.read_text(encoding="utf-8"))
             for path in [m.group(1)] for name in re.findall(r"`(\w+)(?:\([^`]*\))?`", m.group(2))]
    assert len(pairs) > 20  # the engine's modules and their names, the deployment's, ...
    misplaced = []
    for path, name in pairs:
        modules = [mod for mod, file in MODULES.items()
                   if fnmatch.fnmatchcase("/" + file.relative_to(ROOT).as_posix(), "*/" + path)]
        if not any(_holds(mod, name) for mod in modules):
            misplaced.append((path, name))
    assert misplaced == []


def test_architecture_identifiers_are_in_the_code() -> None:
    """A bare name the page cites (``tree_reduce_with_state``, ``RunReader``, ``n_micro_clusters``,
    ``single_threaded_blas``) is a word of the package's source: a renamed function, class,
    parameter or configuration name shows here."""
    words = set(re.findall(r"\w+", _source()))
    missing = [span for span in _architecture_spans()
               if (m := re.fullmatch(rf"({IDENTIFIER})(\(.*\))?", span)) and m.group(1) not in words]
    assert missing == []


def test_architecture_cites_the_engine_and_kernels() -> None:
    """The check above is not vacuous: the page cites the engine's modules and names."""
    spans = set(_architecture_spans())
    for expected in ("engine/tree.py", "engine/readahead.py", "engine/rowstate.py", "tree.PartialTree",
                     "daskcluster.engine.tree_reduce", "kernels/assign.py"):
        assert expected in spans
    assert dotted_exists("daskcluster.engine.tree_reduce")
    assert not dotted_exists("daskcluster.engine.no_such_pass")
    assert not dotted_exists("daskcluster.no_such_module")
    assert short_name_exists("tree", ["PartialTree"]) and not short_name_exists("tree", ["NoSuchTree"])
    assert suffix_exists("engine/tree.py") and not suffix_exists("engine/no_such.py")


# -- import rules (docs/architecture.md, "Import rules") ----------------------------------------


def _imports(module: str) -> set[str]:
    """Every module ``module`` imports, absolute, at any depth of its code (function-level and
    ``TYPE_CHECKING`` imports included); ``from x import y`` gives ``x.y`` when that is a
    module of the package, else ``x``."""
    path = MODULES[module]
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = _resolve_relative(module, is_package, node.level, node.module)
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                out.add(sub if sub in MODULES else source)
    return out


def _in(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def _violations(layer: tuple[str, ...], allowed: tuple[str, ...] = (),
                forbidden: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """(module, import) pairs of the modules of ``layer`` that import a module of the package
    outside ``layer`` + ``allowed`` (when ``allowed`` is given), or any module of ``forbidden``."""
    bad = []
    for module in MODULES:
        if not _in(module, layer):
            continue
        for imported in sorted(_imports(module)):
            own = imported == "daskcluster" or imported.startswith("daskcluster.")
            if (allowed and own and not _in(imported, layer + allowed)) or _in(imported, forbidden):
                bad.append((module, imported))
    return bad


ESTIMATORS = ("daskcluster.cluster", "daskcluster.mixture", "daskcluster.decomposition")
ABOVE_ESTIMATORS = ("daskcluster.selection", "daskcluster.metrics", "daskcluster.plotting")
COMMAND = ("daskcluster.jobs", "daskcluster.cli", "daskcluster.quickstart", "daskcluster.__main__")


def test_kernels_import_no_dask_and_nothing_above_them() -> None:
    """A kernel never sees Dask: the kernels import NumPy, SciPy and Numba, and of the package
    only the errors and the BLAS-threads policy."""
    assert _violations(("daskcluster.kernels",), allowed=("daskcluster.errors", "daskcluster.blas"),
                       forbidden=("dask", "distributed", "zarr", "sklearn", "pandas")) == []


def test_engine_imports_no_algorithm() -> None:
    """The engine knows nothing of any algorithm: of the kernels it uses only the block
    helpers (``kernels/blocks.py``, ``kernels/sparse.py``), and no estimator, analysis, dataset,
    deployment or command module, nor scikit-learn."""
    assert _violations(
        ("daskcluster.engine",),
        allowed=("daskcluster.errors", "daskcluster.params", "daskcluster.blas", "daskcluster.atomic",
                 "daskcluster.data", "daskcluster.io", "daskcluster.kernels.blocks", "daskcluster.kernels.sparse"),
        forbidden=("sklearn",),
    ) == []


def test_sources_and_input_import_no_algorithm() -> None:
    """Sources, datasets and the input layer read data; they import no estimator, analysis,
    deployment or command module."""
    layer = ("daskcluster.io", "daskcluster.io_sparse", "daskcluster.io_frames", "daskcluster.locations",
             "daskcluster.storage", "daskcluster.datasets", "daskcluster.data")
    assert _violations(layer, forbidden=ESTIMATORS + ABOVE_ESTIMATORS + COMMAND + ("daskcluster.deploy",)) == []


def test_estimators_and_analysis_import_no_deployment_or_command() -> None:
    assert _violations(ESTIMATORS + ABOVE_ESTIMATORS, forbidden=("daskcluster.deploy",) + COMMAND) == []


def test_estimators_import_no_analysis() -> None:
    """The estimators sit below the sweeps, metrics and figures (which use them)."""
    assert _violations(ESTIMATORS, forbidden=ABOVE_ESTIMATORS) == []


def test_deployment_imports_no_algorithm() -> None:
    """``daskcluster.deploy`` needs only the errors and the lazy names of the package."""
    assert _violations(("daskcluster.deploy",), allowed=("daskcluster.errors", "daskcluster._lazy")) == []


def test_jobs_and_command_import_no_kernels() -> None:
    """The jobs and the command know nothing of numerics: they use estimators, never kernels."""
    assert _violations(COMMAND, forbidden=("daskcluster.kernels",)) == []


def test_only_the_command_imports_jobs_and_cli() -> None:
    outside = tuple(m for m in MODULES if m != "daskcluster" and not _in(m, COMMAND))
    assert _violations(outside, forbidden=("daskcluster.jobs", "daskcluster.cli")) == []


def test_import_rules_can_fail() -> None:
    """The rules' check sees an import that breaks them (engine/rowstate.py imports the data
    layer, which the engine may; no engine module may import an estimator)."""
    assert ("daskcluster.engine.rowstate", "daskcluster.data") not in _violations(
        ("daskcluster.engine",), allowed=("daskcluster.data", "daskcluster.kernels.blocks"))
    assert ("daskcluster.engine.rowstate", "daskcluster.data") in _violations(
        ("daskcluster.engine",), allowed=("daskcluster.kernels.blocks",))
    assert _violations(("daskcluster.selection",), forbidden=ESTIMATORS) != []
