"""The package's layout rules, checked on its source by path: who may import what, layers, cycles, threads.

`daemon/` is the source root and `seo_sync` the one package in it. The rules, in words:
- boto3/botocore only in aws/ (and demo/, which runs moto); moto only in demo/; sqlite3 and
  sqlite-utils only in cache/ and protection/; apscheduler only in service/maintenance.py.
- Nothing imports upward through the layers below, and aws/ never imports cache/.
- No import cycles, counting every import statement (a late import inside a function still ties
  two modules together).
- Only service/lifecycle.py installs signal handlers or starts the daemon's long-lived threads.
- A module stays within 400 lines; no importlib or __import__ hides an import.
- A table's state (sync/table_state.py) changes only through its transitions: no other module
  assigns a field of TableState.
Each check returns the breaches it finds, so the last tests can show that each one catches a
breach planted in a copy of the package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support.layout import (
    Module,
    attribute_assignments,
    class_fields,
    cycles,
    declared_attributes,
    import_graph,
    internal_target,
    read_module,
    read_package,
    thread_classes,
    thread_starts,
)

REPO = Path(__file__).resolve().parents[2]
SOURCE_ROOT = REPO / "daemon"
PACKAGE = SOURCE_ROOT / "seo_sync"
MAX_LINES = 400

# Third-party top-level module -> the only places (paths inside the package) that may import it.
THIRD_PARTY = {
    "boto3": ("aws/", "demo/"),
    "botocore": ("aws/", "demo/"),
    "moto": ("demo/",),
    "sqlite3": ("cache/", "protection/"),
    "sqlite_utils": ("cache/", "protection/"),
    "apscheduler": ("service/maintenance.py",),
}

# Layers, top first: a module may import its own layer or a lower one, never a higher one. A path
# ending in "/" is a subpackage, anything else one module.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("entry points", ("cli/", "demo/", "__main__.py")),
    ("service", ("service/",)),
    ("data path", ("sync/", "write_path/")),
    ("adapters", ("cache/", "aws/", "protection/", "control/")),
    ("foundation", ("__init__.py", "errors.py", "config.py", "config_env.py", "logs.py", "schema.py", "changes.py",
                    "order.py", "codec/",
                    "backoff.py", "threads.py", "feed.py")),
]
# Same-layer imports that are still forbidden: the AWS adapter knows nothing of the cache.
FORBIDDEN_SIDEWAYS = [("aws/", "cache/")]

# Modules other than service/lifecycle.py that start a thread, and why that thread is not long-lived.
SHORT_LIVED_THREADS = {
    "sync/fullsync.py": "Scan segment and stream capture threads live for one full sync, joined before it returns",
    "service/maintenance.py": "a job run now while the scheduler is off: one run, then the thread ends",
    "aws/kinesis_efo.py": "a subscription's reader lives as long as its SubscribeToShard event stream (AWS ends it "
                          "within 5 minutes) and hands every outcome, its error too, to the feed's next call",
}
LIFECYCLE = "service/lifecycle.py"
TABLE_STATE = "sync/table_state.py"


def layer_of(rel: str) -> int | None:
    """Index in LAYERS of the layer a package path belongs to (0 is the top), or None if no layer names it."""
    for i, (_, members) in enumerate(LAYERS):
        if any(rel == m or (m.endswith("/") and rel.startswith(m)) for m in members):
            return i
    return None


def unit_of(rel: str) -> str:
    """The subpackage (`cache/`) or top-level module (`feed.py`) a path belongs to."""
    head, sep, _ = rel.partition("/")
    return head + sep if sep else rel


def third_party_breaches(modules: dict[str, Module]) -> list[str]:
    """Imports of a third-party package from outside the places allowed to import it."""
    out = []
    for m in modules.values():
        for imp in m.imports:
            top = imp.target.split(".")[0]
            if top in THIRD_PARTY and not m.rel.startswith(THIRD_PARTY[top]):
                out.append(f"{m.rel}:{imp.line} imports {top}; only {', '.join(THIRD_PARTY[top])} may")
    return sorted(set(out))


def layer_breaches(modules: dict[str, Module]) -> list[str]:
    """Modules no layer names, upward imports, and forbidden sideways imports."""
    out = [f"{m.rel} is in no layer: add it to LAYERS" for m in modules.values() if layer_of(m.rel) is None]
    for name, edges in import_graph(modules).items():
        src = modules[name].rel
        for target, line in edges.items():
            dst = modules[target].rel
            a, b = layer_of(src), layer_of(dst)
            if a is not None and b is not None and b < a:
                out.append(f"{src}:{line} imports {dst}: upward, from {LAYERS[a][0]} to {LAYERS[b][0]}")
            if (unit_of(src), unit_of(dst)) in FORBIDDEN_SIDEWAYS:
                out.append(f"{src}:{line} imports {dst}: {unit_of(src)} never imports {unit_of(dst)}")
    return sorted(out)


def cycle_breaches(modules: dict[str, Module]) -> list[str]:
    """Every import cycle, as the modules that form it."""
    return [" <-> ".join(group) for group in cycles(import_graph(modules))]


def thread_and_signal_breaches(modules: dict[str, Module]) -> list[str]:
    """Signal handlers installed, or threads started, outside service/lifecycle.py (and the listed exceptions)."""
    classes = thread_classes(modules)
    out = []
    for m in modules.values():
        if m.rel == LIFECYCLE:
            continue
        for node in ast.walk(m.tree):
            if isinstance(node, ast.Call) and ast.unparse(node.func).endswith(("signal.signal", "add_signal_handler")):
                out.append(f"{m.rel}:{node.lineno} installs a signal handler; only {LIFECYCLE} does")
        if m.rel not in SHORT_LIVED_THREADS:
            out += [f"{m.rel}:{line} starts a thread; only {LIFECYCLE} does" for line in thread_starts(m, classes)]
    return sorted(out)


def size_and_import_trick_breaches(modules: dict[str, Module]) -> list[str]:
    """Modules over MAX_LINES lines, and imports hidden behind importlib or __import__."""
    out = [f"{m.rel}: {m.lines} lines, over {MAX_LINES}" for m in modules.values() if m.lines > MAX_LINES]
    for m in modules.values():
        # importlib.resources reads the package's data files and imports nothing: allowed.
        out += [f"{m.rel}:{imp.line} imports importlib" for imp in m.imports
                if imp.target.split(".")[0] == "importlib" and not imp.target.startswith("importlib.resources")]
        out += [f"{m.rel}:{node.lineno} calls __import__" for node in ast.walk(m.tree)
                if isinstance(node, ast.Call) and ast.unparse(node.func) == "__import__"]
    return sorted(out)


def table_state_breaches(modules: dict[str, Module]) -> list[str]:
    """Assignments to a TableState field outside sync/table_state.py (through anything but `self`).

    Without types, `x.failures = ...` cannot say which class x is: in a module that imports
    TableState every field counts; elsewhere only the fields no other class of the package declares."""
    home = next(m for m in modules.values() if m.rel == TABLE_STATE)
    fields = class_fields(home.tree, "TableState")
    shared = set().union(*(declared_attributes(m.tree) for m in modules.values() if m is not home)) & fields
    out = []
    for m in modules.values():
        if m is home:
            continue
        holds_one = any(imp.target.endswith("table_state.TableState") for imp in m.imports)
        watched = fields if holds_one else fields - shared
        out += [f"{m.rel}:{line} assigns TableState.{t.attr}; only {TABLE_STATE} does (a transition)"
                for t, line in attribute_assignments(m.tree)
                if t.attr in watched and not (isinstance(t.value, ast.Name) and t.value.id == "self")]
    return sorted(out)


CHECKS = [third_party_breaches, layer_breaches, cycle_breaches, thread_and_signal_breaches,
          size_and_import_trick_breaches, table_state_breaches]


@pytest.fixture(scope="module")
def modules() -> dict[str, Module]:
    """The package as it stands in the repository."""
    return read_package(PACKAGE)


def test_daemon_is_a_source_root_holding_only_seo_sync():
    """daemon/ has no __init__.py (`daemon` is python-daemon's import name) and seo_sync is its one package."""
    assert not (SOURCE_ROOT / "__init__.py").exists()
    packages = sorted(p.name for p in SOURCE_ROOT.iterdir() if (p / "__init__.py").exists())
    assert packages == ["seo_sync"]
    assert not list(SOURCE_ROOT.glob("*.py")), "a module beside the package would install as a top-level name"


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_the_package_keeps_the_rule(modules, check):
    """The package as committed breaks none of the layout rules."""
    assert check(modules) == []


def test_every_module_is_read_and_every_listed_exception_is_still_needed(modules):
    """The checks see the whole package, and each short-lived-thread exception still starts a thread."""
    assert len(modules) == len(list(PACKAGE.rglob("*.py")))
    assert {"seo_sync", "seo_sync.cli.main", "seo_sync.service.lifecycle"} <= set(modules)
    assert all(internal_target(t, modules) for t in ("seo_sync.errors.CacheError", "seo_sync.codec"))
    classes = thread_classes(modules)
    by_rel = {m.rel: m for m in modules.values()}
    stale = [rel for rel in SHORT_LIVED_THREADS if rel not in by_rel or not thread_starts(by_rel[rel], classes)]
    assert stale == [], "remove these from SHORT_LIVED_THREADS: they start no thread now"
    assert thread_starts(by_rel[LIFECYCLE], classes), "the lifecycle starts the daemon's threads"


# Each breach below is planted in one module of the package (in memory); the check it targets must report it.
PLANTED = [
    ("errors.py", "import boto3\n", third_party_breaches, "errors.py:1 imports boto3"),
    ("sync/poller.py", "import sqlite3\n", third_party_breaches, "sync/poller.py:1 imports sqlite3"),
    ("cache/lock.py", "from moto import mock_aws\n", third_party_breaches, "cache/lock.py:1 imports moto"),
    ("service/metrics.py", "import apscheduler\n", third_party_breaches, "service/metrics.py:1 imports apscheduler"),
    ("schema.py", "from seo_sync.cache import reader\n", layer_breaches, "schema.py:1 imports cache/reader.py: upward"),
    ("sync/shards.py", "from seo_sync.service import metrics\n", layer_breaches,
     "sync/shards.py:1 imports service/metrics.py: upward"),
    ("aws/translate.py", "from seo_sync.cache.sql import q\n", layer_breaches, "aws/ never imports cache/"),
    ("kinesis_helper.py", "X = 1\n", layer_breaches, "kinesis_helper.py is in no layer"),
    ("errors.py", "def late():\n    from seo_sync import schema\n", cycle_breaches,
     "seo_sync.errors <-> seo_sync.schema"),
    ("sync/poller.py", "import signal\nsignal.signal(signal.SIGHUP, print)\n", thread_and_signal_breaches,
     "sync/poller.py:2 installs a signal handler"),
    ("sync/poller.py", "import threading\nthreading.Thread(target=print).start()\n", thread_and_signal_breaches,
     "sync/poller.py:2 starts a thread"),
    ("sync/table_state.py", "import threading\nclass Loop(threading.Thread):\n    pass\nloop = Loop()\nloop.start()\n",
     thread_and_signal_breaches, "sync/table_state.py:5 starts a thread"),
    ("sync/engine.py", "def go(engine):\n    for t in engine.threads():\n        t.start()\n",
     thread_and_signal_breaches, "sync/engine.py:3 starts a thread"),
    ("cli/kit.py", "import importlib\n", size_and_import_trick_breaches, "cli/kit.py:1 imports importlib"),
    ("logs.py", "\n" * (MAX_LINES + 1), size_and_import_trick_breaches, "logs.py: "),
    ("sync/writer.py", "def boom(rt):\n    rt.state, rt.error = 'streaming', None\n", table_state_breaches,
     "sync/writer.py:2 assigns TableState.state"),
    ("sync/poller.py", "def boom(self):\n    self.table.failures += 1\n", table_state_breaches,
     "sync/poller.py:2 assigns TableState.failures"),
    ("service/metrics.py", "def boom(engine):\n    engine.tables['businesses'].resync_pending = True\n",
     table_state_breaches, "service/metrics.py:2 assigns TableState.resync_pending"),
]


@pytest.mark.parametrize(("rel", "code", "check", "expected"), PLANTED,
                         ids=[f"{p[2].__name__}-{p[0]}" for p in PLANTED])
def test_a_planted_breach_is_reported(modules, rel, code, check, expected):
    """A breach planted in (a copy of) the package is reported by the check for its rule, naming the place."""
    path = PACKAGE / rel
    planted = read_module(PACKAGE, Path(rel), code + (path.read_text(encoding="utf-8") if path.exists() else ""))
    breaches = check({**modules, planted.name: planted})
    assert any(expected in b for b in breaches), breaches
