"""No import cycles: import-linter's contracts (pyproject.toml) hold, and no module of the packages
below is on an import cycle, counting imports made inside functions (where cycles used to hide).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROOT_PACKAGES = ("server", "training", "quantize")
NO_CYCLES_IN = ("server.sql", "server.sql.sample", "server.services", "training.evaluation")  # with their subpackages

Graph = dict[str, dict[str, int]]  # module -> {imported module: line of the first such import}


def _modules(root: Path, packages: tuple[str, ...]) -> dict[str, tuple[Path, bool]]:
    """Every module of `packages` under `root`: name -> (file, is a package's __init__)."""
    out = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            is_init = parts[-1] == "__init__"
            out[".".join(parts[:-1] if is_init else parts)] = (path, is_init)
    return out


def import_graph(root: Path = ROOT, packages: tuple[str, ...] = ROOT_PACKAGES) -> Graph:
    """Edges for every import statement anywhere in a module: top level, functions, TYPE_CHECKING."""
    modules = _modules(root, packages)

    def known(name: str) -> str | None:  # the module itself, else the nearest package that is ours
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: Graph = {}
    for name, (path, is_init) in modules.items():
        package = name if is_init else name.rpartition(".")[0]
        edges: dict[str, int] = {}
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets: list[str | None] = []
            if isinstance(node, ast.Import):
                targets = [known(alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                # `from pkg import mod` imports the submodule; `from mod import name`, the module.
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else known(base) for a in node.names]
            for target in targets:
                if target and target != name:
                    edges.setdefault(target, node.lineno)
        graph[name] = edges
    return graph


def cycles(graph: Graph) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(graph[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in graph:
                    continue
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
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
    return found


def _describe(component: list[str], graph: Graph) -> str:
    return "\n".join(f"  {a} -> {b} (line {line})" for a in component for b, line in graph[a].items() if b in component)


def _inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_the_walk_finds_a_cycle_hidden_inside_a_function(tmp_path: Path) -> None:
    package = tmp_path / "p"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("from . import b\nimport p.sub.c\n")
    (package / "b.py").write_text("X = 1\n\n\ndef f():\n    from .a import Y\n")
    (package / "sub" / "c.py").write_text("from ..d import Z\n")
    (package / "d.py").write_text("Z = 1\n")
    graph = import_graph(tmp_path, ("p",))
    assert graph["p.a"] == {"p.b": 1, "p.sub.c": 2} and graph["p.b"] == {"p.a": 5} and graph["p.sub.c"] == {"p.d": 1}
    assert cycles(graph) == [["p.a", "p.b"]]
    (package / "b.py").write_text("X = 1\n")
    assert cycles(import_graph(tmp_path, ("p",))) == []


def test_no_import_cycles_in_the_sql_and_evaluation_packages() -> None:
    graph = import_graph()
    assert "server.sql.connections" in graph and "training.evaluation.mc" in graph  # the walk found the code
    offending = [c for c in cycles(graph) if any(_inside(m, p) for m in c for p in NO_CYCLES_IN)]
    assert not offending, "import cycles (move the shared piece into a module of its own):\n" + "\n\n".join(
        _describe(c, graph) for c in offending)


def test_import_linter_contracts_hold() -> None:
    lint_imports = Path(sys.executable).parent / "lint-imports"
    assert lint_imports.exists(), f"{lint_imports} is missing: pip install -e '.[dev]' (import-linter)"
    proc = subprocess.run([str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
