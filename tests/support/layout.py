"""Reads a package's source without importing it: its modules, their imports, and the import graph.

tests/repo/test_layout.py states the layout rules; this module only gathers the facts they are
checked against. Every import statement counts, wherever it stands: one inside a function or under
`if TYPE_CHECKING:` still makes one module depend on another, so a cycle hidden by a late import is
still a cycle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Import:
    """One imported name: `target` is the dotted module (or module.attribute) named by the statement."""

    target: str
    line: int


@dataclass
class Module:
    """One source file of the package."""

    name: str  # dotted import name: seo_sync.cache.writer; a package's __init__ is the package's name
    rel: str  # path inside the package: cache/writer.py
    path: Path
    tree: ast.Module
    lines: int
    imports: list[Import]


def read_package(root: Path) -> dict[str, Module]:
    """Every module under the package directory `root`, by dotted name, with its imports resolved."""
    modules = (read_module(root, path.relative_to(root), path.read_text(encoding="utf-8"))
               for path in sorted(root.rglob("*.py")))
    return {m.name: m for m in modules}


def read_module(root: Path, rel: Path, text: str) -> Module:
    """The module at `rel` inside the package directory `root`, whose source is `text`."""
    parts = [root.name, *rel.with_suffix("").parts]
    is_package = parts[-1] == "__init__"
    if is_package:
        parts.pop()
    name = ".".join(parts)
    path = root / rel
    tree = ast.parse(text, filename=str(path))
    imports = list(_imports(tree, name if is_package else name.rpartition(".")[0]))
    return Module(name, rel.as_posix(), path, tree, text.count("\n"), imports)


def _imports(tree: ast.Module, package: str) -> Iterator[Import]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolved against the importing module's package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            # `from pkg import name` names the submodule pkg.name when there is one, else pkg itself:
            # internal_target resolves either to the longest dotted prefix that is a module.
            for alias in node.names:
                yield Import(f"{module}.{alias.name}", node.lineno)


def internal_target(target: str, modules: dict[str, Module]) -> str | None:
    """The package module an import names (the longest dotted prefix that is a module), or None."""
    parts = target.split(".")
    for end in range(len(parts), 0, -1):
        name = ".".join(parts[:end])
        if name in modules:
            return name
    return None


def import_graph(modules: dict[str, Module]) -> dict[str, dict[str, int]]:
    """Module -> {module it imports: line of the first such import}, inside the package only."""
    graph: dict[str, dict[str, int]] = {}
    for name, module in modules.items():
        edges: dict[str, int] = {}
        for imp in module.imports:
            target = internal_target(imp.target, modules)
            if target is not None and target != name:
                edges.setdefault(target, imp.line)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The import cycles: every strongly connected group of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def call_name(call: ast.Call) -> str:
    """The dotted text of what a call calls: `threading.Thread`, `signal.signal`, `t.start`."""
    return ast.unparse(call.func)


def thread_classes(modules: dict[str, Module]) -> set[str]:
    """Names of threading.Thread and of every class in the package that derives from it."""
    names = {"Thread", "threading.Thread"}
    classes = [node for m in modules.values() for node in ast.walk(m.tree) if isinstance(node, ast.ClassDef)]
    grew = True
    while grew:  # a subclass of a subclass counts too, in whatever order the files come
        grew = False
        for node in classes:
            if node.name not in names and any(ast.unparse(base) in names for base in node.bases):
                names.add(node.name)
                grew = True
    return names


def thread_starts(module: Module, classes: set[str]) -> list[int]:
    """Lines where `module` starts a thread: `.start()` on a thread, on a name bound to one, or on a
    loop variable over a list of them (built there, or handed over by a `threads()` call)."""
    def makes_threads(value: ast.expr | None) -> bool:
        if isinstance(value, ast.Call):  # a thread class, or a `threads()` that hands over built threads
            return call_name(value).rpartition(".")[2] in {c.rpartition(".")[2] for c in classes} | {"threads"}
        if isinstance(value, ast.List | ast.Tuple):
            return any(makes_threads(e) for e in value.elts)
        if isinstance(value, ast.ListComp):
            return makes_threads(value.elt)
        return False

    holders: set[str] = set()
    nodes = list(ast.walk(module.tree))
    for node in nodes:
        if isinstance(node, ast.Assign) and makes_threads(node.value):
            holders.update(ast.unparse(t) for t in node.targets)
        elif isinstance(node, ast.AnnAssign) and makes_threads(node.value):
            holders.add(ast.unparse(node.target))
    for node in nodes:  # `for t in self.threads:` or `for t in [Worker(...), ...]:` makes `t` a thread
        if isinstance(node, ast.For) and (ast.unparse(node.iter) in holders or makes_threads(node.iter)):
            holders.add(ast.unparse(node.target))
    starts = []
    for node in nodes:
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "start":
            receiver = node.func.value
            if makes_threads(receiver) or ast.unparse(receiver) in holders:
                starts.append(node.lineno)
    return starts


def class_fields(tree: ast.Module, name: str) -> set[str]:
    """The annotated fields of class `name` in `tree` (a dataclass's fields)."""
    return {n.target.id for c in tree.body if isinstance(c, ast.ClassDef) and c.name == name
            for n in c.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}


def declared_attributes(tree: ast.Module) -> set[str]:
    """Every attribute a class of `tree` declares: its annotated fields and what its methods assign to self."""
    out: set[str] = set()
    for c in ast.walk(tree):
        if isinstance(c, ast.ClassDef):
            out |= class_fields(ast.Module(body=[c], type_ignores=[]), c.name)
            out |= {t.attr for t, _ in attribute_assignments(c)
                    if isinstance(t.value, ast.Name) and t.value.id == "self"}
    return out


def attribute_assignments(tree: ast.AST) -> Iterator[tuple[ast.Attribute, int]]:
    """Every `x.attr = ...`, `x.attr += ...` and `x.attr: T = ...` target in `tree` (tuple targets unpacked)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        else:
            continue
        for t in targets:
            for e in t.elts if isinstance(t, ast.Tuple | ast.List) else [t]:
                if isinstance(e, ast.Attribute):
                    yield e, node.lineno
