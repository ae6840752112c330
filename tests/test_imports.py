"""Every module imports on its own, and imports point one way (docs/conventions.md §1).

* Each module of our packages is imported first thing in a fresh interpreter, so
  an import cycle that only bites in some import order shows up (aiohttp's
  ``tests/test_circular_imports.py`` does the same).
* ``protocol`` stays pure: importing all of it loads neither aiohttp nor asyncpg
  (nor any of our server packages).
* ``national_hub`` never imports ``local_node`` and vice versa (scanned with ast,
  so an import inside a function or under TYPE_CHECKING counts too).

Modules are discovered with pkgutil.walk_packages when the tests are collected,
so new modules are covered without editing this file. Nothing is skipped
quietly: a package that does not exist yet is reported as a skip with a reason,
a ``.py`` file that walk_packages cannot reach (a directory without
``__init__.py``) fails, and so does a package whose ``__init__`` does not import.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import os
import pkgutil
import re
import subprocess
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest

PACKAGES = ("protocol", "server_common", "national_hub", "local_node", "synthetic")
# (importer, imported): top-level packages that must never import each other.
FORBIDDEN = [
    ("national_hub", "local_node"),
    ("local_node", "national_hub"),
    ("protocol", "national_hub"),
    ("protocol", "local_node"),
    ("protocol", "server_common"),
    ("protocol", "synthetic"),
]
PROTOCOL_MUST_NOT_LOAD = ("aiohttp", "asyncpg", "national_hub", "local_node", "server_common")
SUBPROCESS_TIMEOUT = 120


@dataclass
class Package:
    name: str
    modules: list[str] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)  # module name -> source file
    problems: list[str] = field(default_factory=list)
    absent: str | None = None  # why the package has nothing to test yet


def _module_name(package: str, root: Path, path: Path) -> str:
    parts = [package, *path.relative_to(root).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def discover(name: str) -> Package:
    pkg = Package(name)
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError) as exc:
        pkg.problems.append(f"cannot find {name}: {exc!r}")
        return pkg
    if spec is None or spec.submodule_search_locations is None:
        pkg.absent = f"package {name} does not exist yet"
        return pkg
    try:
        module = importlib.import_module(name)
    except Exception as exc:  # any failure is reported by the test, not here
        pkg.problems.append(f"import {name} failed: {exc!r}")
        return pkg

    def onerror(failed: str) -> None:
        pkg.problems.append(f"walk_packages could not import {failed}: {sys.exc_info()[1]!r}")

    found = {name, *(m.name for m in pkgutil.walk_packages(module.__path__, f"{name}.",
                                                           onerror=onerror))}
    # Every .py file on disk must be one of the modules found.
    for root in map(Path, module.__path__):
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            mod = _module_name(name, root, path)
            pkg.files[mod] = path
            if mod not in found and mod != name:
                pkg.problems.append(
                    f"{path} is not reachable by walk_packages (missing __init__.py?)")
    pkg.modules = sorted(found)
    if not pkg.files and not pkg.problems:  # an empty directory: a namespace package
        pkg.absent = f"package {name} has no modules yet"
        pkg.modules = []
    return pkg


def all_modules() -> list[str]:
    return [m for p in PACKAGES for m in discover(p).modules]


# --- every package discovered cleanly ---------------------------------------------


@pytest.mark.parametrize("name", PACKAGES)
def test_package_discovery(name: str) -> None:
    pkg = discover(name)
    assert not pkg.problems, "\n".join(pkg.problems)
    if pkg.absent:
        pytest.skip(pkg.absent)
    assert pkg.modules


# --- each module in a fresh interpreter -------------------------------------------


def _python(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=SUBPROCESS_TIMEOUT, cwd=Path(__file__).parent.parent, env=env)


def _import_code(module: str) -> str:
    if module.rsplit(".", 1)[-1] == "__main__":
        # Importing a __main__ would run the program; compile it and import what it imports.
        return (
            "import ast, importlib, importlib.util, pathlib\n"
            f"spec = importlib.util.find_spec({module!r})\n"
            "tree = ast.parse(pathlib.Path(spec.origin).read_text(), spec.origin)\n"
            "for node in ast.walk(tree):\n"
            "    if isinstance(node, ast.ImportFrom) and node.level == 0:\n"
            "        importlib.import_module(node.module)\n"
            "    elif isinstance(node, ast.Import):\n"
            "        for alias in node.names:\n"
            "            importlib.import_module(alias.name)\n"
        )
    return f"import importlib; importlib.import_module({module!r})"


# Every module in a process of its own, without paying an interpreter start and the
# third-party imports (numpy, aiohttp, cryptography, …) ~170 times over: one process
# imports those once, then forks a child per module, which imports it with none of the
# project's modules loaded yet. What is checked is the same: each module imports on
# its own, whatever was imported before it.
_THIRD_PARTY = """
import importlib, json, sys
for module in json.loads(sys.stdin.read()):
    try:
        importlib.import_module(module)
    except BaseException:
        pass
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] not in {own!r})))
"""
_FORKED = """
import importlib, json, os, sys, traceback
preload, modules = json.loads(sys.stdin.read())
for name in preload:
    try:
        importlib.import_module(name)
    except BaseException:
        pass
out = {}
for module, code in modules:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        status, told = 0, b""
        try:
            exec(code, {"__name__": "__check__"})
        except BaseException:
            status, told = 1, traceback.format_exc().encode()
        os.write(write, told)
        os._exit(status)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        told = pipe.read()
    _, status = os.waitpid(pid, 0)
    out[module] = [os.waitstatus_to_exitcode(status), told.decode(errors="replace")]
print(json.dumps(out))
"""


def _python_in(code: str, stdin: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, "-c", code], input=stdin, capture_output=True,
                          text=True, timeout=SUBPROCESS_TIMEOUT,
                          cwd=Path(__file__).parent.parent, env=env)


@cache
def import_results() -> dict[str, subprocess.CompletedProcess[str]]:
    """Import every module in a process of its own (forked, see above)."""
    modules = all_modules()
    plain = [m for m in modules if m.rsplit(".", 1)[-1] != "__main__"]
    found = _python_in(_THIRD_PARTY.format(own=set(PACKAGES)), json.dumps(plain))
    assert found.returncode == 0, found.stderr
    ran = _python_in(_FORKED, json.dumps([json.loads(found.stdout),
                                          [(m, _import_code(m)) for m in modules]]))
    assert ran.returncode == 0, ran.stderr
    results = json.loads(ran.stdout)
    return {m: subprocess.CompletedProcess([m], results[m][0], "", results[m][1])
            for m in modules}


# The first of these runs every import (one interpreter per module, ~150 of them) and
# the rest read its results: allow it the whole batch's time on a busy machine.
@pytest.mark.timeout(900)
@pytest.mark.parametrize("module", all_modules())
def test_module_imports_in_a_fresh_process(module: str) -> None:
    result = import_results()[module]
    assert result.returncode == 0, f"import {module} failed:\n{result.stderr}"


# --- protocol stays pure ----------------------------------------------------------


def test_protocol_loads_no_server_code() -> None:
    modules = discover("protocol").modules
    assert "protocol.encoding" in modules  # discovery really found the package
    code = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = _python(code)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    offending = sorted(m for m in loaded if m.split(".")[0] in PROTOCOL_MUST_NOT_LOAD)
    assert not offending, f"importing protocol loaded {offending}"


# --- the servers never import each other ------------------------------------------


def imported_names(path: Path, module: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import statement in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = importlib.util.resolve_name("." * node.level + (node.module or ""),
                                                   package)
            else:
                base = node.module or ""
            out.append((node.lineno, base))
            # ``from pkg import sub`` imports pkg.sub when sub is a module.
            out.extend((node.lineno, f"{base}.{alias.name}") for alias in node.names)
    return out


def test_import_scan_sees_relative_and_nested_imports(tmp_path: Path) -> None:
    src = tmp_path / "x.py"
    src.write_text("def f():\n    from ..local_node import app\n"
                   "if False:\n    import local_node.cli\n")
    names = {name for _, name in imported_names(src, "national_hub.services.x")}
    assert {"national_hub.local_node", "local_node.cli"} <= names


@pytest.mark.parametrize("importer, imported", FORBIDDEN,
                         ids=[f"{a}-not-{b}" for a, b in FORBIDDEN])
def test_forbidden_imports(importer: str, imported: str) -> None:
    pkg = discover(importer)
    assert not pkg.problems, "\n".join(pkg.problems)
    if pkg.absent:
        pytest.skip(pkg.absent)
    bad = [
        f"{path}:{line}: imports {name}"
        for module, path in sorted(pkg.files.items())
        for line, name in imported_names(path, module)
        if name == imported or name.startswith(imported + ".")
    ]
    assert not bad, "\n".join(bad)


# --- inside a server: handlers → services → storage, SQL only in storage/ ---------

SERVERS = ("national_hub", "local_node")
LAYERS = ("handlers", "services", "storage")
# (layer, layer it must never import) inside one server (docs/conventions.md §1)
LAYER_FORBIDDEN = [("handlers", "storage"), ("services", "handlers"),
                   ("storage", "services"), ("storage", "handlers")]
# A statement, not prose: upper-case keywords in the shape SQL has.
SQL = re.compile(r"\b(?:SELECT\s+(?:[\w*(]|DISTINCT)|INSERT\s+INTO\s|UPDATE\s+\w+\s+SET\s"
                 r"|DELETE\s+FROM\s|TRUNCATE\s+\w|CREATE\s+(?:TABLE|INDEX|DATABASE)\s"
                 r"|ALTER\s+TABLE\s|COPY\s+\w+\s+(?:FROM|TO)\b)")
# server_common is plumbing; outside its stores only these speak SQL, each for a reason.
SQL_PLUMBING = {
    "server_common.database": "the migration runner: schema versions and advisory lock",
    "server_common.embedded_pg": "creates the embedded server's database",
    "server_common.web": "/readyz asks the database to answer SELECT 1",
}


# The outer layer besides handlers/: the wiring and the commands, which reach storage
# only through the services container.
OUTER = ("app", "cli", "audit_cli")


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    if len(parts) == 2 and parts[1] in OUTER:
        return "handlers"
    return parts[1] if len(parts) > 2 and parts[1] in LAYERS else None


def is_storage(module: str) -> bool:
    """A module where SQL belongs: a server's storage/, or a store of server_common."""
    last = module.rsplit(".", 1)[-1]
    return layer_of(module) == "storage" or last == "store" or last.endswith("_store")


def sql_literals(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every string literal (f-strings' fixed parts joined) that reads
    as a SQL statement. Docstrings are prose and may quote SQL."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    docstrings = {
        id(node.body[0].value) for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    found: list[tuple[int, str]] = []
    inside_fstrings = {id(v) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr)
                       for v in node.values}
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            text = "".join(v.value for v in node.values
                           if isinstance(v, ast.Constant) and isinstance(v.value, str))
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
              and id(node) not in docstrings and id(node) not in inside_fstrings):
            text = node.value
        else:
            continue
        if SQL.search(text):
            found.append((node.lineno, " ".join(text.split())[:70]))
    return found


def test_layer_and_sql_scans_see_violations(tmp_path: Path) -> None:
    src = tmp_path / "x.py"
    src.write_text('"""SELECT x FROM y in a docstring is prose."""\n'
                   "def f(t):\n"
                   "    from ..storage import records\n"
                   "    q = f'DELETE FROM {t} WHERE id = $1'\n"
                   "    return 'SELECT link_status FROM records', q, 'select a friend'\n")
    names = {name for _, name in imported_names(src, "national_hub.handlers.x")}
    assert "national_hub.storage.records" in names
    assert [line for line, _ in sql_literals(src)] == [4, 5]
    assert layer_of("local_node.storage.children") == "storage"
    assert layer_of("local_node.cli") == layer_of("national_hub.app") == "handlers"
    assert layer_of("local_node.metrics") is None
    assert is_storage("server_common.audit.witness_store")


@pytest.mark.parametrize("server", SERVERS)
@pytest.mark.parametrize("layer, forbidden", LAYER_FORBIDDEN,
                         ids=[f"{a}-not-{b}" for a, b in LAYER_FORBIDDEN])
def test_layers_point_one_way(server: str, layer: str, forbidden: str) -> None:
    pkg = discover(server)
    assert not pkg.problems, "\n".join(pkg.problems)
    modules = [(m, p) for m, p in sorted(pkg.files.items()) if layer_of(m) == layer]
    assert modules, f"{server} has no {layer}/ modules: the scan found nothing to check"
    target = f"{server}.{forbidden}"
    bad = [f"{path}:{line}: a {layer} module imports {name}"
           for module, path in modules
           for line, name in imported_names(path, module)
           if name == target or name.startswith(target + ".")]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("name", (*SERVERS, "server_common"))
def test_sql_only_in_storage(name: str) -> None:
    pkg = discover(name)
    assert not pkg.problems, "\n".join(pkg.problems)
    assert any(is_storage(m) for m in pkg.files), f"{name}: no storage modules found"
    bad = [f"{path}:{line}: SQL outside storage: {text!r}"
           for module, path in sorted(pkg.files.items())
           if not is_storage(module) and module not in SQL_PLUMBING
           for line, text in sql_literals(path)]
    assert not bad, "\n".join(bad)
