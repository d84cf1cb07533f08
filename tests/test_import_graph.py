"""No import cycle among the ``maskdiff`` modules.

Every module under ``src/maskdiff`` is parsed with ``ast`` (nothing is imported): every import
counts, at the top of a module, inside a function, or under ``if TYPE_CHECKING:``, relative ones
resolved. A cycle hidden in a function body (a lazy import) is still a cycle: the two modules each
need the other, and the laziness only moves the failure to whichever call comes first.

The graph is maskdiff.pipeline.code_deps.import_graph (the one that also derives each rule's code
inputs). An edge goes to the module an import names: ``from maskdiff.a import b`` is an edge to
``maskdiff.a.b`` when ``b`` is a submodule, else to ``maskdiff.a`` (for a package, its
``__init__.py``). The parent packages Python runs first are not edges: a package's ``__init__``
re-exporting its submodules would otherwise make every submodule part of a cycle.
"""

from __future__ import annotations

from maskdiff.pipeline.code_deps import import_graph


def cycles(graph: dict[str, set[str]]) -> list[tuple[str, ...]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[tuple[str, ...]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
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
                found.append(tuple(sorted(component)))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def test_no_import_cycle_among_maskdiff_modules():
    graph = import_graph()
    assert len(graph) > 50 and "maskdiff.rewards.scorer" in graph, "the whole package was read"
    found = cycles(graph)
    described = [f"cycle among {', '.join(c)}:\n    " + "\n    ".join(f"{m} imports {sorted(graph[m] & set(c))}" for m in c)
                 for c in found]
    assert not described, "import cycles:\n" + "\n".join(described)


def test_the_graph_sees_lazy_relative_and_type_checking_imports(tmp_path):
    """The checker itself: a cycle through a function-level relative import and a TYPE_CHECKING
    import is found; a submodule imported through its package's __init__ is not a cycle."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from pkg.a import f\n")
    (pkg / "a.py").write_text("def f():\n    from .sub import b\n    return b\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..a import f\n")
    (pkg / "c.py").write_text("import os\nfrom pkg import f\n")
    graph = import_graph(tmp_path, "pkg")
    assert graph == {"pkg": {"pkg.a"}, "pkg.a": {"pkg.sub.b"}, "pkg.sub": set(), "pkg.sub.b": {"pkg.a"},
                     "pkg.c": {"pkg"}}
    assert cycles(graph) == [("pkg.a", "pkg.sub.b")]
