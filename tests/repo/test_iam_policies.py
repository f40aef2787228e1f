"""Least privilege: config/iam-daemon.json is read-only, both policies are scoped to the seo_* tables,
and each grants exactly what the code it is for calls (found from the source, not from a list here).
"""

from __future__ import annotations

import ast
import copy
import json
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "daemon" / "seo_sync"
DAEMON_POLICY = ROOT / "config" / "iam-daemon.json"
WRITER_POLICY = ROOT / "config" / "iam-writer.json"

# Every DynamoDB / DynamoDB Streams action that only reads. Anything else is a write or an admin action.
READ_ONLY_ACTIONS = {
    "BatchGetItem", "ConditionCheckItem", "DescribeStream", "DescribeTable", "DescribeTimeToLive",
    "GetItem", "GetRecords", "GetShardIterator", "ListStreams", "ListTables", "PartiQLSelect", "Query", "Scan",
}
STREAM_ACTIONS = {"DescribeStream", "GetRecords", "GetShardIterator", "ListStreams"}
TABLE_ARN = "arn:aws:dynamodb:*:*:table/seo_*"
STREAM_ARN = TABLE_ARN + "/stream/*"
# In the issue's list for the daemon, read-only and scoped to our streams, though no code calls it yet.
DAEMON_UNUSED_ALLOWED = {"ListStreams"}
# The daemon process: `seo-sync run` starts service/lifecycle.py; every module it imports runs with the
# daemon's role. Modules are named by their dotted path inside the package (`sync.engine`).
DAEMON_ENTRY = ("service.lifecycle",)
# The AWS modules whose methods call DynamoDB: their calls are what the policies must allow.
AWS_MODULES = ("aws.tables", "aws.streams")
# Operator and write-path commands run as the writer; `run` (cli.service → service) is the daemon, and
# the demo only ever talks to the embedded moto server.
WRITER_ENTRY_GLOB = "cli/*.py"
WRITER_EXCLUDED = {"service.lifecycle", "demo.embedded", "demo.live"}


def load(path: Path) -> dict[str, Any]:
    """A policy document."""
    return json.loads(path.read_text(encoding="utf-8"))


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def actions(policy: dict[str, Any]) -> set[str]:
    """The DynamoDB action names the policy allows, without the `dynamodb:` prefix."""
    return {a.split(":", 1)[1] for st in policy["Statement"] for a in _as_list(st.get("Action", []))}


def problems(policy: dict[str, Any], *, read_only: bool) -> list[str]:
    """Every way the policy breaks the least-privilege rules (empty when it is fine)."""
    found = []
    if policy.get("Version") != "2012-10-17":
        found.append("Version must be 2012-10-17")
    statements = policy.get("Statement")
    if not isinstance(statements, list) or not statements:
        return [*found, "Statement must be a non-empty list"]
    for i, st in enumerate(statements):
        where = f"statement {i} ({st.get('Sid', '?')})"
        if st.get("Effect") != "Allow":
            found.append(f"{where}: only Allow statements (a Deny here would hide a broad Allow elsewhere)")
        for key in ("NotAction", "NotResource", "NotPrincipal", "Principal"):
            if key in st:
                found.append(f"{where}: {key} is not allowed")
        acts, resources = _as_list(st.get("Action", [])), _as_list(st.get("Resource", []))
        if not acts or not resources:
            found.append(f"{where}: needs Action and Resource")
        for a in acts:
            service, _, name = str(a).partition(":")
            if service != "dynamodb" or not name:
                found.append(f"{where}: action {a!r} is not a dynamodb action")
            elif "*" in name or "?" in name:
                found.append(f"{where}: wildcard action {a!r}")
            elif read_only and name not in READ_ONLY_ACTIONS:
                found.append(f"{where}: write action {a!r} in a read-only policy")
        names = {str(a).partition(":")[2] for a in acts}
        for r in resources:
            if r in ("*", "arn:aws:dynamodb:*:*:*", "arn:aws:dynamodb:*:*:table/*") or not str(r).startswith(
                    "arn:aws:dynamodb:"):
                found.append(f"{where}: resource {r!r} is not scoped to the seo_* tables")
            elif names & STREAM_ACTIONS and r != STREAM_ARN:
                found.append(f"{where}: stream actions need the stream ARN {STREAM_ARN}, got {r!r}")
            elif names - STREAM_ACTIONS and r != TABLE_ARN:
                found.append(f"{where}: table actions need the table ARN {TABLE_ARN}, got {r!r}")
    return found


# -- what the code calls -------------------------------------------------------------------------


def _pascal(op: str) -> str:
    return "".join(part.capitalize() for part in op.split("_"))


def source_method_actions() -> dict[str, set[str]]:
    """Source / StreamReader method → the DynamoDB actions it calls (self.ddb.X / self.client.X), transitively."""
    direct: dict[str, set[str]] = {}
    calls: dict[str, set[str]] = {}
    classes = [c for m in AWS_MODULES for c in ast.parse(module_path(m).read_text(encoding="utf-8")).body]
    for cls in classes:
        if not (isinstance(cls, ast.ClassDef) and cls.name in ("Source", "StreamReader")):
            continue
        for fn in cls.body:
            if not isinstance(fn, ast.FunctionDef) or fn.name.startswith("__"):
                continue
            for node in ast.walk(fn):
                if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
                        and node.value.attr in ("ddb", "client") and isinstance(node.value.value, ast.Name)
                        and node.value.value.id == "self" and node.attr != "meta"):
                    direct.setdefault(fn.name, set()).add(_pascal(node.attr))
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and isinstance(node.func.value, ast.Name) and node.func.value.id == "self"):
                    calls.setdefault(fn.name, set()).add(node.func.attr)
            direct.setdefault(fn.name, set())
    resolved = {}
    for name in direct:
        seen, todo, acts = set(), [name], set()
        while todo:
            m = todo.pop()
            if m in seen or m not in direct:
                continue
            seen.add(m)
            acts |= direct[m]
            todo += calls.get(m, ())
        resolved[name] = acts
    return {k: v for k, v in resolved.items() if v}


def module_path(module: str) -> Path:
    """The file of a dotted module name inside the package (`sync.engine`, or `codec` for a package)."""
    base = PACKAGE.joinpath(*module.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def _daemon_imports(module: str) -> set[str]:
    tree = ast.parse(module_path(module).read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("seo_sync"):
            base = node.module.removeprefix("seo_sync").lstrip(".")
            for a in node.names:  # `from seo_sync.protection import backups` names a module too
                sub = f"{base}.{a.name}" if base else a.name
                if module_path(sub).exists():
                    found.add(sub)
                elif base:
                    found.add(base)
    return found


def module_closure(entries: list[str], excluded: set[str] = frozenset()) -> set[str]:
    """The daemon modules reachable by imports from `entries` (not crossing `excluded`)."""
    seen: set[str] = set()
    todo = list(entries)
    while todo:
        m = todo.pop()
        if m in seen or m in excluded or not module_path(m).exists():
            continue
        seen.add(m)
        todo += _daemon_imports(m)
    return seen


def actions_called_by(modules: set[str]) -> set[str]:
    """DynamoDB actions behind every Source / StreamReader method these modules call."""
    methods = source_method_actions()
    needed: set[str] = set()
    for m in modules - set(AWS_MODULES):
        tree = ast.parse(module_path(m).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in methods:
                needed |= methods[node.func.attr]
    return needed


def daemon_needs() -> set[str]:
    """Actions the daemon process can call."""
    return actions_called_by(module_closure(list(DAEMON_ENTRY)))


def writer_needs() -> set[str]:
    """Actions the operator / write-path commands can call."""
    entries = [".".join(p.relative_to(PACKAGE).with_suffix("").parts) for p in PACKAGE.glob(WRITER_ENTRY_GLOB)]
    return actions_called_by(module_closure(entries, WRITER_EXCLUDED))


# -- the tests -------------------------------------------------------------------------------------


def test_daemon_policy_is_read_only_and_scoped():
    """iam-daemon.json: only read actions, no wildcards, only the seo_* tables and their streams."""
    assert problems(load(DAEMON_POLICY), read_only=True) == []


def test_writer_policy_is_scoped_and_has_no_wildcards():
    """iam-writer.json: no dynamodb:*, no Resource "*", table and stream actions on their own ARNs."""
    assert problems(load(WRITER_POLICY), read_only=False) == []


def test_daemon_policy_is_the_issue_list():
    """The daemon may DescribeTable, Scan, GetItem, Query (one business at once), DescribeStream,
    GetShardIterator, GetRecords, ListStreams."""
    assert actions(load(DAEMON_POLICY)) == {
        "DescribeTable", "Scan", "GetItem", "Query", "DescribeStream", "GetShardIterator", "GetRecords",
        "ListStreams"}


def test_daemon_policy_covers_every_call_the_daemon_makes_and_no_more():
    """Every DynamoDB call reachable from service.py is allowed, and nothing beyond them (but ListStreams)."""
    needed, granted = daemon_needs(), actions(load(DAEMON_POLICY))
    assert {"Scan", "GetRecords", "DescribeTable"} <= needed  # the code scan found the daemon's calls
    assert needed - granted == set(), "the daemon calls actions its policy does not allow"
    assert granted - needed - DAEMON_UNUSED_ALLOWED == set(), "the daemon policy allows actions nothing calls"


def test_writer_policy_is_exactly_what_the_commands_call():
    """The writer role allows exactly the actions the CLI commands (not `run`, not the demo) can reach."""
    needed, granted = writer_needs(), actions(load(WRITER_POLICY))
    assert "PutItem" in needed and "BatchWriteItem" not in needed
    assert needed == granted, f"missing {sorted(needed - granted)}, unused {sorted(granted - needed)}"


def _with(policy: dict[str, Any], **changes: Any) -> dict[str, Any]:
    bad = copy.deepcopy(policy)
    bad["Statement"][0].update(changes)
    return bad


@pytest.mark.parametrize(("change", "expected"), [
    ({"Action": ["dynamodb:GetItem", "dynamodb:PutItem"]}, "write action 'dynamodb:PutItem'"),
    ({"Action": ["dynamodb:BatchWriteItem"]}, "write action"),
    ({"Action": ["dynamodb:*"]}, "wildcard action 'dynamodb:*'"),
    ({"Action": ["dynamodb:Get*"]}, "wildcard action"),
    ({"Action": "*"}, "not a dynamodb action"),
    ({"Resource": "*"}, "not scoped"),
    ({"Resource": ["arn:aws:dynamodb:*:*:table/*"]}, "not scoped"),
    ({"Effect": "Deny"}, "only Allow"),
    ({"NotAction": ["dynamodb:DeleteTable"]}, "NotAction"),
])
def test_the_checker_catches_each_violation(change, expected):
    """A read-only policy with a write action, a wildcard, Resource "*" or a Not* clause is rejected."""
    found = problems(_with(load(DAEMON_POLICY), **change), read_only=True)
    assert any(expected in p for p in found), found


def test_the_checker_catches_stream_actions_on_a_table_arn():
    """GetRecords granted on the table ARN would be denied by AWS: the checker says so."""
    policy = load(DAEMON_POLICY)
    policy["Statement"][1]["Resource"] = [TABLE_ARN]
    assert any("stream ARN" in p for p in problems(policy, read_only=True))
