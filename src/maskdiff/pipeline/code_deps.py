"""The library source files a workflow stage runs, derived from the import graph.

Snakemake does not track imported Python code, so every rule lists the source files it runs as
inputs: editing one reruns exactly the stages that use it. A hand-written list goes stale the day
someone adds an import and forgets the list, silently (the stage keeps old results). Here the list
is computed: the handler of the ``maskdiff`` subcommand a rule runs (:func:`handler_name`), its
imports (and those of the helpers it calls) and the CLI's top-level imports are the entry points, and every ``maskdiff`` module
they import, at the top or lazily inside a function, transitively, is a dependency. A notebook's
code cells are read the same way. Conservative on purpose: a module imported anywhere in the chain
counts, whether or not that code path runs.

Pure ``ast``: nothing is imported (Snakemake computes these on every start).
"""

from __future__ import annotations

import ast
import json
from functools import lru_cache
from pathlib import Path

PACKAGE = "maskdiff"
SRC = Path(__file__).resolve().parents[2]  # the directory holding the maskdiff package


@lru_cache(maxsize=None)
def module_file(module: str, src: Path = SRC) -> Path | None:
    """``maskdiff.rewards.math`` -> its source file (a module or a package's ``__init__.py``)."""
    base = src.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def module_name(path: Path, src: Path = SRC) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def imports_of(nodes, here: str, is_package: bool, src: Path = SRC, parents: bool = True,
               package: str = PACKAGE) -> set[str]:
    """The ``package`` modules imported anywhere inside ``nodes`` (an AST or a list of them), for
    code in module ``here``: absolute and relative imports, at the top or inside functions.

    ``parents=True``: what running the code loads: ``from a.b import c`` gives ``a.b`` and ``a.b.c``
    (when ``c`` is a submodule) with every parent package (importing ``a.b.c`` runs ``a`` and ``a.b``
    first); only modules that exist. ``parents=False``: the import graph's edges, the module each
    import names (``a.b.c`` for a submodule, else ``a.b``), whether it exists or not."""
    anchor_package = here if is_package else here.rpartition(".")[0]
    found: set[str] = set()
    for node in _statements(nodes if isinstance(nodes, list) else [nodes]):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == package)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = anchor_package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base.split(".")[0] != package:
                continue
            submodules = {f"{base}.{a.name}" for a in node.names if module_file(f"{base}.{a.name}", src)}
            found |= submodules
            if parents or len(submodules) < len(node.names):
                found.add(base)
    if not parents:
        return found - {here}
    with_parents = set()
    for module in found:
        parts = module.split(".")
        with_parents.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return {m for m in with_parents if module_file(m, src)}


# The fields that hold statement lists (bodies of modules, functions, classes, if/for/while/with/try,
# except handlers and match cases): imports are statements, so no expression needs visiting.
_BODIES = ("body", "orelse", "finalbody", "handlers", "cases")


def _statements(nodes):
    """Every statement in ``nodes`` and in the bodies nested inside them (several times faster than
    ``ast.walk``, which also visits every expression: each Snakemake start parses the package)."""
    todo = list(nodes)
    while todo:
        node = todo.pop()
        yield node
        for field in _BODIES:
            todo.extend(getattr(node, field, ()))


def import_graph(src: Path = SRC, package: str = PACKAGE) -> dict[str, set[str]]:
    """Module -> the ``package`` modules it imports (edges as :func:`imports_of` with
    ``parents=False``); an import of a module that does not exist is a ValueError naming it."""
    files = {module_name(p, src): p for p in sorted((src / package).rglob("*.py"))}
    graph = {}
    for module, path in files.items():
        edges = imports_of(_parsed(path), module, _is_package(path), src, parents=False, package=package)
        unknown = sorted(edges - set(files))
        if unknown:
            raise ValueError(f"{path}: imports modules that do not exist: {unknown}")
        graph[module] = edges
    return graph


@lru_cache(maxsize=None)
def _parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


@lru_cache(maxsize=None)
def _imports_of_file(path: Path, src: Path) -> tuple[str, ...]:
    return tuple(sorted(imports_of(_parsed(path), module_name(path, src), _is_package(path), src)))


def closure(modules, src: Path = SRC) -> set[Path]:
    """The source files of ``modules`` and of everything they import, transitively."""
    seen: set[Path] = set()
    todo = [module_file(m, src) for m in modules]
    while todo:
        path = todo.pop()
        if path is None or path in seen:
            continue
        seen.add(path)
        todo += [module_file(m, src) for m in _imports_of_file(path, src)]
    return seen


def command_entry_modules(command: str, src: Path = SRC) -> set[str]:
    """The modules ``maskdiff <command>`` runs: the top-level imports of the CLI module and of the
    module holding the command's handler, and the imports inside the handler and the helpers of
    that module it calls (by name, transitively). Neither module is an entry itself (their other
    commands' imports are not this command's code); their files are among the stage's files
    (:func:`command_files`)."""
    cli, handler_module, bodies = _command_code(command, src)
    found = set()
    for module, nodes in ((cli, []), (handler_module, bodies)):  # relative imports resolve against their own module
        top = [n for n in _parsed(module_file(module, src)).body if isinstance(n, (ast.Import, ast.ImportFrom))]
        found |= imports_of(top + nodes, module, _is_package(module_file(module, src)), src)
    return found - {cli, handler_module}


def command_files(command: str, src: Path = SRC) -> set[Path]:
    """The CLI module's file and the file of the module holding the command's handler."""
    cli, handler_module, _ = _command_code(command, src)
    return {module_file(cli, src), module_file(handler_module, src)}


HANDLERS = f"{PACKAGE}.commands"  # the module of the subcommands' handlers


def handler_name(command: str) -> str:
    """The handler of ``maskdiff <command>`` in :mod:`maskdiff.commands`, by the CLI's naming rule
    (``evaluate`` -> ``cmd_evaluate``, ``train-<algorithm>`` -> ``cmd_train``): read from the source
    rather than by importing the CLI, which would cost every Snakemake start ~0.5 s (a test checks
    the rule against the parser)."""
    return "cmd_train" if command.startswith("train-") else "cmd_" + command.replace("-", "_")


def _command_code(command: str, src: Path):
    tree = _parsed(module_file(HANDLERS, src))
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    name = handler_name(command)
    if name not in functions:
        raise ValueError(f"no subcommand `maskdiff {command}` (no handler {HANDLERS}.{name})")
    bodies, todo, seen = [], [name], set()
    while todo:
        name = todo.pop()
        if name in seen or name not in functions:
            continue
        seen.add(name)
        bodies.append(functions[name])
        todo += [n.id for n in ast.walk(functions[name]) if isinstance(n, ast.Name)]
    return f"{PACKAGE}.cli", HANDLERS, bodies


def notebook_entry_modules(notebook: str | Path, src: Path = SRC) -> set[str]:
    """The ``maskdiff`` modules a notebook's code cells import."""
    cells = json.loads(Path(notebook).read_text())["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    lines = [line for line in code.splitlines() if not line.lstrip().startswith(("%", "!"))]  # magics are not Python
    return imports_of(ast.parse("\n".join(lines)), "__main__", False, src)


def stage_code(commands=(), notebooks=(), src: Path = SRC, root: Path | None = None) -> list[str]:
    """Sorted source files (relative to ``root``, default the project) of the ``maskdiff``
    subcommands and notebooks a rule runs."""
    root = root or src.parent
    modules = set().union(*(command_entry_modules(c, src) for c in commands),
                          *(notebook_entry_modules(root / n, src) for n in notebooks))
    files = closure(modules, src).union(*(command_files(c, src) for c in commands))
    return sorted(p.relative_to(root).as_posix() for p in files)
