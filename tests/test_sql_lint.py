"""No SQL built by string formatting: queries are constant strings, values go as parameters, and
identifiers through ``psycopg.sql`` (``sql.SQL("... {}").format(sql.Identifier(name))``).

Walks the AST of every module under server/, edge/, citywatch/ and bench/ and flags each
``.execute`` / ``.executemany`` / ``.copy`` / ``.fetch*`` call and each ``sql.SQL`` / ``SQL`` call whose
first argument is an f-string with a placeholder, a ``%``-formatted string, a ``str.format`` call, or a
concatenation with anything but literals (also through ``.encode()`` and through a local name bound to
such a value).
"""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGES = ("server", "edge", "citywatch", "bench")
QUERY_METHODS = frozenset({"execute", "executemany", "copy"})
#: Reviewed exceptions, as "path:line". Keep empty: fix the query instead.
ALLOWED: frozenset[str] = frozenset()

Scope = ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda


def _is_query_call(call: ast.Call) -> bool:
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr in QUERY_METHODS or func.attr.startswith("fetch") or func.attr == "SQL"
    return isinstance(func, ast.Name) and func.id == "SQL"


def _first_argument(call: ast.Call) -> ast.expr | None:
    if call.args:
        return None if isinstance(call.args[0], ast.Starred) else call.args[0]
    return next((kw.value for kw in call.keywords if kw.arg in {"query", "sql", "statement"}), None)


class _Checker:
    """Why an expression is SQL built by formatting, or None; names resolve within their scope."""

    def __init__(self, tree: ast.Module) -> None:
        self._bindings: dict[tuple[int, str], list[ast.expr]] = {}
        self._scope_of: dict[int, Scope] = {}
        self._walk_scope(tree, tree)

    def _walk_scope(self, scope: Scope, node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                self._walk_scope(child, child)
                continue
            self._scope_of[id(child)] = scope
            targets: list[ast.expr] = []
            value: ast.expr | None = None
            if isinstance(child, ast.Assign):
                targets, value = child.targets, child.value
            elif isinstance(child, ast.AnnAssign | ast.AugAssign) and child.value is not None:
                targets, value = [child.target], child.value
                if isinstance(child, ast.AugAssign):  # q += f"..." extends the query
                    value = ast.BinOp(left=child.target, op=child.op, right=child.value)
            elif isinstance(child, ast.NamedExpr):
                targets, value = [child.target], child.value
            for target in targets:
                if isinstance(target, ast.Name) and value is not None:
                    self._bindings.setdefault((id(scope), target.id), []).append(value)
            self._walk_scope(scope, child)

    def _values_of(self, name: ast.Name) -> list[ast.expr]:
        scope = self._scope_of.get(id(name))
        local = self._bindings.get((id(scope), name.id), []) if scope is not None else []
        return local or self._bindings.get((id(self._module_scope), name.id), [])

    @property
    def _module_scope(self) -> Scope:
        return next(s for s in self._scope_of.values() if isinstance(s, ast.Module))

    def is_literal(self, node: ast.expr, seen: frozenset[str] = frozenset()) -> bool:
        """A string known without running anything: constants, their concatenation, names bound to them."""
        if isinstance(node, ast.Constant):
            return isinstance(node.value, str | bytes)
        if isinstance(node, ast.JoinedStr):
            return not any(isinstance(v, ast.FormattedValue) for v in node.values)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            return self.is_literal(node.left, seen) and self.is_literal(node.right, seen)
        if isinstance(node, ast.Name) and node.id not in seen:
            values = self._values_of(node)
            return bool(values) and all(self.is_literal(v, seen | {node.id}) for v in values)
        return False

    def problem(self, node: ast.expr, seen: frozenset[str] = frozenset()) -> str | None:
        if isinstance(node, ast.JoinedStr) and any(isinstance(v, ast.FormattedValue) for v in node.values):
            return "f-string"
        if (
            isinstance(node, ast.BinOp)
            and isinstance(node.op, ast.Mod)
            and (isinstance(node.left, ast.Constant | ast.JoinedStr) or self.is_literal(node.left, seen))
        ):
            return "%-formatting"
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            inner = self.problem(node.left, seen) or self.problem(node.right, seen)
            if inner:
                return inner
            if not (self.is_literal(node.left, seen) and self.is_literal(node.right, seen)):
                return "concatenation with a non-literal"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            receiver = node.func.value
            if node.func.attr == "format" and not _is_sql_composable(receiver):
                return "str.format"
            if node.func.attr in {"encode", "decode", "strip", "lower", "upper"}:
                return self.problem(receiver, seen)
        if isinstance(node, ast.Name) and node.id not in seen:
            for value in self._values_of(node):
                why = self.problem(value, seen | {node.id})
                if why:
                    return f"{why} (via {node.id!r})"
        return None


def _is_sql_composable(node: ast.expr) -> bool:
    """``sql.SQL(...)``, ``SQL(...)`` or ``sql.Composed``-returning calls: psycopg's own ``.format``."""
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Attribute):
            return func.attr in {"SQL", "join", "format"} and (
                func.attr == "SQL" or _is_sql_composable(func.value)
            )
        return isinstance(func, ast.Name) and func.id == "SQL"
    return False


def violations(source: str, filename: str = "<snippet>") -> Iterator[str]:
    """``file:line: why`` for each query built by string formatting in ``source``."""
    tree = ast.parse(source, filename)
    checker = _Checker(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _is_query_call(node):
            arg = _first_argument(node)
            why = None if arg is None else checker.problem(arg)
            if why:
                yield f"{filename}:{node.lineno}: {why} in {ast.unparse(node.func)}(...)"


BAD = textwrap.dedent(
    """\
    from psycopg import sql

    def f(cur, table, name, day):
        cur.execute(f"SELECT * FROM {table}")
        cur.execute("SELECT * FROM %s" % table)
        cur.execute("SELECT * FROM {}".format(table))
        cur.execute("SELECT * FROM " + table)
        cur.executemany("DELETE FROM t WHERE a = '" + name + "'", [])
        cur.copy(f"COPY {table} FROM STDIN")
        cur.fetch(f"SELECT {name}")
        sql.SQL(f"SELECT * FROM {table}")
        query = f"SELECT * FROM {table}"
        cur.execute(query)
        cur.execute(f"SELECT count(*) FROM {table}".encode())
        q = "SELECT * FROM t WHERE day = "
        q += day
        cur.execute(q)
    """
)
GOOD = textwrap.dedent(
    """\
    from psycopg import sql

    QUERY = "SELECT * FROM t WHERE a = %s"
    JOINED = "SELECT * FROM t " "WHERE b = %(b)s"
    PARTS = "SELECT * " + "FROM t"

    def f(cur, table, name, statement):
        cur.execute(QUERY, (name,))
        cur.execute(JOINED, {"b": name})
        cur.execute(PARTS)
        cur.execute(f"SELECT 1")
        cur.execute(sql.SQL("SELECT * FROM {} WHERE a = %s").format(sql.Identifier(table)), (name,))
        cur.execute(sql.SQL(", ").join(sql.Identifier(c) for c in ("a", "b")))
        cur.execute(statement)
        cur.fetchone()
        local = "SELECT 2"
        cur.execute(local)
        "%s items" % name
        "{}".format(name)
    """
)


def test_the_checker_flags_each_kind_of_formatted_query() -> None:
    found = list(violations(BAD))
    lines = sorted(int(v.split(":")[1]) for v in found)
    assert lines == [4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 17], "\n".join(found)


def test_the_checker_allows_constants_parameters_and_sql_composition() -> None:
    assert list(violations(GOOD)) == []


def _modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def test_the_walk_covers_the_query_modules() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in _modules()}
    assert {"server/ingest/writer.py", "server/db/migrate.py", "edge/outbox.py"} <= names


@pytest.mark.parametrize("path", _modules(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_sql_is_built_by_string_formatting(path: Path) -> None:
    rel = path.relative_to(ROOT).as_posix()
    found = [v for v in violations(path.read_text(encoding="utf-8"), rel) if v.split(": ")[0] not in ALLOWED]
    assert found == [], "SQL built by string formatting:\n" + "\n".join(found)
