"""The import boundaries the docstrings and the README promise, checked.

- Each ``edgecv/compile/*`` module, imported alone in a fresh interpreter, pulls in neither
  MXNet nor ``edgecv.zoo`` / ``edgecv.export`` / ``edgecv.deploy``: the compile stage reads an
  exported bundle and nothing of the MXNet side.
- So do ``edgecv.evaluate``, ``edgecv.datasets`` and ``edgecv.calibration``, which the int8
  gate (compile/int8_build.py) imports when it runs.
- ``import edgecv`` and ``edgecv.runtime`` pull in neither MXNet nor TVM.
- TVM's Python API (``tvm``, ``tvm_ffi``) is imported only inside ``edgecv/compile/``,
  anywhere in a module's source, lazy imports included (the C++ module ``edgecv._runtime``
  is edgecv's own, not TVM's API).
- No import cycle between edgecv's modules. The graph is built with ``ast`` from every import
  statement, at the top of a module *and inside function bodies* (lazy imports count: a
  cycle through one is still a cycle of responsibilities). One edge is excluded, by name:
  ``edgecv.compile``'s module ``__getattr__`` forwards the old name
  ``edgecv.compile.compile_model`` to ``edgecv.deploy`` for existing callers; it runs only
  when that name is asked for.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import edgecv

pytestmark = pytest.mark.unit

PACKAGE = Path(edgecv.__file__).parent
SOURCE = Path(__file__).resolve().parents[1] / "edgecv"
ROOT = SOURCE if SOURCE.is_dir() else PACKAGE  # read the checkout's sources when present
ALLOWED_LAZY = {("edgecv.compile", "edgecv.deploy")}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _imported(module: str) -> list[str]:
    """Modules loaded by importing ``module`` alone in a fresh interpreter."""
    code = f"import importlib, json, sys; importlib.import_module({module!r}); print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def _banned(loaded: list[str], prefixes: tuple[str, ...]) -> list[str]:
    return [m for m in loaded if any(m == p or m.startswith(p + ".") for p in prefixes)]


COMPILE_MODULES = sorted(
    m for m in MODULES if m == "edgecv.compile" or m.startswith("edgecv.compile.")
)


@pytest.mark.parametrize("module", COMPILE_MODULES)
def test_compile_never_imports_the_mxnet_side(module):
    loaded = _imported(module)
    assert not _banned(loaded, ("mxnet", "edgecv.zoo", "edgecv.export", "edgecv.deploy"))


@pytest.mark.parametrize("module", ["edgecv.evaluate", "edgecv.datasets", "edgecv.calibration"])
def test_what_the_int8_gate_imports_stays_off_the_mxnet_side(module):
    loaded = _imported(module)
    assert not _banned(loaded, ("mxnet", "edgecv.zoo", "edgecv.export", "edgecv.deploy"))


@pytest.mark.parametrize("module", ["edgecv", "edgecv.runtime"])
def test_light_imports(module):
    assert not _banned(_imported(module), ("mxnet", "tvm", "tvm_ffi"))


def _edges(name: str, path: Path) -> set[str]:
    """Modules of edgecv that ``name`` imports anywhere in its source."""
    is_package = path.name == "__init__.py"
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = name.split(".") if is_package else name.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join(package + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            # `from . import x`: the submodule x when there is one, else the package
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names
            ]
        else:
            continue
        out.update(t for t in targets if t in MODULES and t != name)
    return out


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    graph = {m: _edges(m, p) for m, p in MODULES.items()}
    assert graph["edgecv.compile.int8_build"], "the graph builder found no imports: broken test"
    for a, b in ALLOWED_LAZY:
        assert b in graph[a], f"the allowed edge {a} -> {b} is gone: drop it from ALLOWED_LAZY"
        graph[a].discard(b)
    cycles = _cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(
        " <-> ".join(c) + "  " + str({m: sorted(graph[m] & set(c)) for m in c}) for c in cycles
    )


TVM_PACKAGES = ("tvm", "tvm_ffi")


def _tvm_imports(path: Path) -> list[str]:
    """``line: statement`` of every import of TVM's Python packages in ``path``'s source."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names = [node.module or ""]
        else:
            continue
        if any(n.split(".")[0] in TVM_PACKAGES for n in names):
            found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


def test_only_compile_imports_tvm():
    outside = {
        m: hits
        for m, p in MODULES.items()
        if m not in COMPILE_MODULES and (hits := _tvm_imports(p))
    }
    assert not outside, f"TVM's Python API outside edgecv/compile/: {outside}"
    assert _tvm_imports(MODULES["edgecv.compile.tvm_api"]), "no TVM import found: broken test"


def test_the_cycle_finder_finds_cycles():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
