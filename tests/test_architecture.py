"""The layering docs/architecture.md describes, checked on the source (pure Python, no Spark).

Every import counts: top-level, inside functions, and module names given to importlib or to the
stage registry as text, because a cycle through any of them is still a cycle when it runs.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("jobs", "lens", "generator")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for top in PACKAGES for p in sorted((REPO / top).rglob("*.py"))}


def _resolve(name: str) -> str | None:
    """The module an import of `name` loads (a name imported from a package may be its submodule)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str) -> set[str]:
    tree = ast.parse(MODULES[module].read_text())
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    # imports only a type checker runs (`if TYPE_CHECKING:`) are not executed: no cycle through them
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If) and _is_type_checking(block.test)
                   for stmt in block.body for n in ast.walk(stmt)}
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            names = [f"{base}.{a.name}" for a in node.names] + [base]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and "." in node.value:
            # "jobs.identity.stitch" as text: importlib.import_module or the stage registry
            if node.value in MODULES:
                names = [node.value]
        for name in names:
            target = _resolve(name)
            if target and target != module and not module.startswith(target + "."):
                found.add(target)
    # importing a.b.c also runs the packages a and a.b; an empty __init__ imports nothing more
    return {t for t in found if MODULES[t].name != "__init__.py" or MODULES[t].read_text().strip()}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


GRAPH = {m: imports_of(m) for m in MODULES}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_checker_sees_a_cycle_through_importlib_text():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    # the CLI reaches the stages only through the registry's module names (text)
    assert "jobs.identity.stitch" in GRAPH["jobs.pipeline"]


def test_no_import_cycle():
    assert find_cycle(GRAPH) is None, " -> ".join(find_cycle(GRAPH))


def test_lens_is_a_library_that_imports_nothing_from_jobs():
    offenders = {m: sorted(t for t in GRAPH[m] if t.split(".")[0] != "lens") for m in GRAPH if m.startswith("lens")}
    assert {m: t for m, t in offenders.items() if t} == {}


@pytest.mark.parametrize("layer", ["jobs.core"])
def test_shared_plumbing_imports_no_stage(layer):
    """core/ is below every stage: config, session, tables and errors never import a stage package
    (stage settings are sections of the config, which may import those settings modules only)."""
    offenders = {
        m: sorted(t for t in GRAPH[m] if t.startswith("jobs.") and not t.startswith(layer) and not t.endswith(".settings"))
        for m in GRAPH if m.startswith(layer)
    }
    assert {m: t for m, t in offenders.items() if t} == {}


def test_production_code_never_imports_the_generator():
    users = sorted(m for m in GRAPH if not m.startswith("generator") and any(t.startswith("generator") for t in GRAPH[m]))
    assert users == ["jobs.cli"]  # `c360 generate` is a command, not a stage
