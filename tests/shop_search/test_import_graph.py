"""The architecture in the import graph: dependencies point one way and no module imports
itself back through others. Function-level imports count: they are dependencies too."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

# Lower layers never import higher ones; shop_search (the project) may import every app.
LAYERS = {"ml": 0, "catalog": 1, "indexing": 2, "search": 3, "partners": 4, "shop_search": 5}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node but those under `if TYPE_CHECKING:` (type-only imports are no dependency)."""
    nodes, pending = [], [tree]
    while pending:
        node = pending.pop()
        nodes.append(node)
        for child in ast.iter_child_nodes(node):
            test = getattr(child, "test", None) if isinstance(child, ast.If) else None
            if test is not None and "TYPE_CHECKING" in ast.unparse(test):
                pending.extend(child.orelse)
                continue
            pending.append(child)
    return nodes


def _imports(path: Path, module: str) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _graph() -> dict[str, set[str]]:
    files = {
        _module_name(path): path
        for top in LAYERS
        for path in (ROOT / top).rglob("*.py")
        if "migrations" not in path.parts
    }
    graph = {}
    for module, path in files.items():
        graph[module] = {name for name in _imports(path, module) if name in files and name != module}
    return graph


def _app(module: str) -> str:
    return module.split(".")[0]


def test_dependencies_point_one_way():
    backwards = sorted(
        f"{module} -> {target}"
        for module, targets in _graph().items()
        for target in targets
        if LAYERS[_app(target)] > LAYERS[_app(module)]
    )
    assert backwards == []


def test_ml_imports_no_django_and_catalog_no_other_app():
    for top, forbidden in (
        ("ml", ("django", "rest_framework", "celery")),
        ("catalog", ("indexing", "search", "partners")),
    ):
        offenders = sorted(
            f"{_module_name(path)} imports {name}"
            for path in (ROOT / top).rglob("*.py")
            if "migrations" not in path.parts
            for name in _imports(path, _module_name(path))
            if name.split(".")[0] in forbidden
        )
        assert offenders == [], top


def test_no_module_imports_itself_back():
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    assert cycles == []
