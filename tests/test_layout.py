"""The package's layout holds: every module imports, the import graph of rlthf_selector has no circle, and the
library never imports the backend.

The graph is read from the source with ``ast``: every ``import`` and ``from ... import``, those inside functions
included (a deferred import still ties two modules together). A module's parent packages, which Python runs first,
are not counted as edges; an explicit ``from rlthf_selector.io import load_jsonl`` is an edge to ``rlthf_selector.io``.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PACKAGE = "rlthf_selector"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE



def _module_files() -> dict[str, Path]:
    """Dotted module name -> source file, for every module of the package (the data folder holds no code)."""
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, modules: set[str]) -> set[str]:
    """The modules ``name`` imports: inside the package (resolved to modules), and ``ml_backend`` ones as written."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            origins, targets = [alias.name for alias in node.names], []
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            # `from pkg import sub` imports the submodule pkg.sub; `from mod import name` imports mod.
            origins, targets = [origin], [f"{origin}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(o for o in origins if o in modules or o.split(".")[0] == "ml_backend")
        found.update(t for t in targets if t in modules)
    found.discard(name)
    return found


def _graph() -> dict[str, set[str]]:
    files = _module_files()
    return {name: _imports(name, path, set(files)) for name, path in files.items()}


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a path ``[a, b, ..., a]``, or None (depth-first search with colours)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt in graph and nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_graph_reader_sees_direct_and_deferred_imports():
    graph = _graph()
    assert "rlthf_selector.io.rows" in graph["rlthf_selector.io.jsonl"]  # module level
    assert "rlthf_selector.out_of_fold" in graph["rlthf_selector.loop"]  # inside a function
    assert "rlthf_selector.io" in graph["rlthf_selector.simulate"]  # `from rlthf_selector import io as ...`


def test_the_cycle_finder_finds_a_circle():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_import_circles_in_the_package():
    cycle = _find_cycle({name: {t for t in targets if t.startswith(PACKAGE)} for name, targets in _graph().items()})
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_the_library_never_imports_the_backend():
    edges = {(name, target) for name, targets in _graph().items() for target in targets
             if target.split(".")[0] == "ml_backend"}
    assert not edges, f"rlthf_selector imports ml_backend (the backend registers its commands itself): {sorted(edges)}"


# A package's __main__ runs its program on import: `python -m` is how it is used, so it is not imported here.
@pytest.mark.parametrize("name", sorted(n for n in _module_files() if not n.endswith(".__main__")))
def test_every_module_imports(name):
    assert importlib.import_module(name).__name__ == name


def test_no_module_over_600_lines():
    sizes = {name: len(path.read_text().splitlines()) for name, path in _module_files().items()}
    over = {name: n for name, n in sizes.items() if n > 600}
    assert not over, f"modules over 600 lines (issue 18: cut along a real concern): {over}"
