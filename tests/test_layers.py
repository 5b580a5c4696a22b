"""Imports run one way: every module of floodwatch imports only from its own layer's package or lower ones,
and the module graph has no cycle. The order is written down in docs/architecture.md; keep both in step.

Every import statement counts, function-level ones too (a lazy import is still a dependency), read with
`ast` from the source, so nothing is imported to check it.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

#: Bottom to top. A module may import from its own package and from the packages of lower layers; packages
#: grouped in one layer are independent of each other.
LAYERS: list[tuple[str, ...]] = [
    ("floodwatch", "floodwatch.errors"),
    ("floodwatch.io",),
    ("floodwatch.data", "floodwatch.tao", "floodwatch.acquisition"),
    ("floodwatch.augment", "floodwatch.models", "floodwatch.serving"),
    ("floodwatch.export",),
    ("floodwatch.inference",),
    ("floodwatch.config",),
    ("floodwatch.evaluation",),
    ("floodwatch.training",),
    ("floodwatch.mapping",),
    ("floodwatch.monitoring",),
    ("floodwatch.demo",),
    ("floodwatch.cli",),
    ("floodwatch.__main__",),
]


def module_files(src: Path = SRC) -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package's __init__)."""
    out = {}
    for path in sorted(src.rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return out


def imports_of(module: str, path: Path, is_package: bool, known: set[str]) -> list[tuple[str, int]]:
    """(imported floodwatch module, line) for every import statement in the file, at any depth.

    `from a import b` names the module a.b when that is one, else a itself. A module's parent packages,
    which Python runs first, are not counted: every submodule would otherwise "import" its package."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            targets = [f"{origin}.{a.name}" if f"{origin}.{a.name}" in known else origin for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import a.b.c` where c is a name, not a module
                target = target.rpartition(".")[0]
            if target and target != module:
                found.append((target, node.lineno))
    return found


def layer_of(module: str) -> int:
    best, level = "", -1
    for i, group in enumerate(LAYERS):
        for package in group:
            if (module == package or module.startswith(package + ".")) and len(package) > len(best):
                best, level = package, i
    return level


def package_of(module: str) -> str:
    return max((p for group in LAYERS for p in group if module == p or module.startswith(p + ".")), key=len)


def import_graph() -> dict[str, list[tuple[str, int]]]:
    files = module_files()
    known = set(files)
    return {m: imports_of(m, path, is_package, known) for m, (path, is_package) in files.items()}


def upward_imports(graph: dict[str, list[tuple[str, int]]]) -> list[str]:
    bad = []
    for module, targets in graph.items():
        for target, line in targets:
            same_package = package_of(module) == package_of(target)
            if not same_package and layer_of(target) >= layer_of(module):
                bad.append(f"{module}:{line} imports {target} (layer {layer_of(target)} >= {layer_of(module)})")
    return bad


def cycles(graph: dict[str, list[tuple[str, int]]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    edges = {m: sorted({t for t, _ in targets}) for m, targets in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            if i < len(edges[node]):
                work.append((node, i + 1))
                nxt = edges[node][i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return found


def test_every_module_has_a_layer():
    assert [m for m in module_files() if layer_of(m) < 0] == []  # a new package needs a place in LAYERS


def test_imports_run_down_the_layers():
    bad = upward_imports(import_graph())
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_no_import_cycle():
    found = cycles(import_graph())
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


# -- the checker itself catches what it must ----------------------------------------------------------------
def _graph_from(tmp_path: Path, files: dict[str, str]) -> dict[str, list[tuple[str, int]]]:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    found = module_files(tmp_path)
    return {m: imports_of(m, p, pkg, set(found)) for m, (p, pkg) in found.items()}


def test_checker_sees_function_level_and_relative_imports(tmp_path):
    graph = _graph_from(tmp_path, {
        "floodwatch/__init__.py": "",
        "floodwatch/data/__init__.py": "",
        "floodwatch/data/a.py": "def f():\n    from ..training import loop\n",
        "floodwatch/training/__init__.py": "",
        "floodwatch/training/loop.py": "from floodwatch.data.a import f\n",
    })
    assert graph["floodwatch.data.a"] == [("floodwatch.training.loop", 2)]
    assert upward_imports(graph) == ["floodwatch.data.a:2 imports floodwatch.training.loop (layer 8 >= 2)"]
    assert cycles(graph) == [["floodwatch.data.a", "floodwatch.training.loop"]]


@pytest.mark.parametrize("text", ["from . import b\n", "import floodwatch.data.b as b\n", "from .b import x\n"])
def test_checker_finds_a_cycle_inside_one_package(tmp_path, text):
    graph = _graph_from(tmp_path, {
        "floodwatch/__init__.py": "",
        "floodwatch/data/__init__.py": "",
        "floodwatch/data/a.py": text,
        "floodwatch/data/b.py": "from .a import y\n",
    })
    assert upward_imports(graph) == []  # one package: any direction is allowed, ...
    assert cycles(graph) == [["floodwatch.data.a", "floodwatch.data.b"]]  # ... a circle is not
