"""The code's shape: no package module imports one that imports it back, directly or through others, and no test module
imports another (shared test helpers live in tests/helpers.py and conftest.py)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "nca_gradio"
TESTS = Path(__file__).resolve().parent


def imports_of(path: Path) -> set[str]:
    """The package's modules that a module imports anywhere in it (a function-local import counts too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:  # from . import a, b
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("nca_gradio."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("nca_gradio."))
    return found


def import_graph() -> dict[str, set[str]]:
    modules = {path.stem: path for path in PACKAGE.glob("*.py") if path.stem != "__init__"}
    return {name: imports_of(path) & set(modules) - {name} for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import loop as [a, b, ..., a], or None (depth-first search, colouring modules as it goes)."""
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> list[str] | None:
        state[module] = "open"
        for imported in sorted(graph[module]):
            if state.get(imported) == "open":
                return path[path.index(imported):] + [imported]
            if imported not in state:
                loop = visit(imported, path + [imported])
                if loop:
                    return loop
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state:
            loop = visit(module, [module])
            if loop:
                return loop
    return None


def test_no_module_imports_one_that_imports_it_back():
    graph = import_graph()
    assert {"model", "fast", "model_folder", "hub", "ui"} <= set(graph)  # the walk sees the package
    assert "model" in graph["fast"] and "fast" in graph["render"]  # and its imports
    loop = find_cycle(graph)
    assert loop is None, "import loop: " + " -> ".join(loop)


def test_the_cycle_finder_finds_a_loop_through_three_modules():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_the_core_model_reads_in_one_screen():
    """model.py's NCA class, the textbook core, stays about 60 lines; the fast paths live in fast.py."""
    tree = ast.parse((PACKAGE / "model.py").read_text())
    core = next(node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "NCA")
    assert core.end_lineno - core.lineno + 1 <= 60
    assert {f.name for f in core.body if isinstance(f, ast.FunctionDef)} >= {"perceive", "update", "forward"}


def imported_test_modules(path: Path) -> set[str]:
    """The tests/test_*.py modules a module imports anywhere in it (a function-local import counts too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
    return {name for name in names if name.startswith("test_")}


def test_no_test_module_imports_another():
    """Importing a test module runs its module-level code and can collect its tests twice: helpers go in helpers.py."""
    found = {path.name: imported_test_modules(path) for path in sorted(TESTS.glob("test_*.py"))}
    assert len(found) > 10  # the walk sees the tests
    assert {name: imported for name, imported in found.items() if imported} == {}


def test_the_test_import_check_sees_local_and_dotted_imports(tmp_path):
    module = tmp_path / "test_x.py"
    module.write_text("import os\nfrom helpers import TINY\ndef f():\n    from test_hub import model_folder\n    import test_a.b\n")
    assert imported_test_modules(module) == {"test_hub", "test_a"}
