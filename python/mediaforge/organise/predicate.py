"""User SQL predicates (smart collections, `--where`), checked before they run.

A predicate is accepted only when DuckDB's own parser reads `SELECT media_id FROM library
WHERE (<predicate>)` as exactly one plain SELECT over `library` (no second statement, no
UNION, ORDER BY, LIMIT or GROUP BY smuggled after it, no subquery anywhere in it), reads it
without those parentheses too (none of its own closes them), and the binder finds every
column it names. Predicates are only ever run inside that same SELECT,
so nothing can write or drop through one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from .. import _dbload  # noqa: F401 - before duckdb: holds Ctrl-C back while it loads

import duckdb
import pyarrow as pa

from ..catalog import Catalog
from ..catalog.store import damaged, is_corruption
from ..errors import InvalidInputError, first_line, is_text

# The documented columns of the `library` view are what a predicate may name.
WRAP = "SELECT media_id::VARCHAR FROM library WHERE ({predicate}\n)"


def walk(node: Any) -> Any:
    """Every dict in a parsed tree, without recursion (a condition may nest deep)."""
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, dict):
            yield n
            stack.extend(n.values())
        elif isinstance(n, list):
            stack.extend(n)


def parse_tree(cat: Catalog, sql: str, too_deep: str) -> dict[str, Any]:
    """DuckDB's parse tree of `sql`, as JSON; `too_deep`: the error when it nests deeper
    than Python's JSON reader goes."""
    (raw,) = cat.con.sql("SELECT json_serialize_sql($q)", params={"q": sql}).fetchall()[0]
    try:
        return json.loads(raw)
    except RecursionError:
        raise InvalidInputError(too_deep) from None


def _shown(pred: str) -> str:
    """A condition as an error line quotes it: a long one cut short."""
    return repr(pred) if len(pred) <= 200 else repr(pred[:200]) + "..."


def check_predicate(cat: Catalog, predicate: str) -> str:
    """The predicate, stripped, once it is known to be a safe, valid filter over
    `library`; otherwise `InvalidInputError` with one line saying why."""
    pred = (predicate or "").strip()
    if not pred:
        raise InvalidInputError("empty predicate: give a SQL condition such as \"kind = 'video' AND duration > 600\"")
    if not is_text(pred):
        raise InvalidInputError("the condition holds bytes that are not valid UTF-8")
    sql = WRAP.format(predicate=pred)
    deep = f"condition nested too deeply: {_shown(pred)}"
    tree = parse_tree(cat, sql, deep)
    if tree.get("error"):
        # Said of the condition alone, not of the wrapper's parentheses around it (`kind =`
        # is cut short at its end, not "at or near )").
        alone = parse_tree(cat, f"SELECT 1 FROM library WHERE {pred}\n", deep)
        why = alone.get("error_message") if alone.get("error") else tree.get("error_message")
        if "expression depth" in (why or ""):  # (its hint, a SET, is refused everywhere)
            raise InvalidInputError(deep)
        if "Only SELECT statements can be serialized" in (why or ""):  # a `;` and another statement after it
            why = "one condition, not statements: it holds a ';' and more after it"
        raise InvalidInputError(f"not a SQL condition: {_shown(pred)} ({first_line(why or '')})")
    statements = tree.get("statements") or []
    node = statements[0].get("node", {}) if len(statements) == 1 else {}
    plain = (
        node.get("type") == "SELECT_NODE"
        and not node.get("modifiers")
        and not node.get("group_expressions")
        and node.get("having") is None
        and node.get("qualify") is None
        and not (node.get("cte_map") or {}).get("map")
        and (node.get("from_table") or {}).get("table_name") == "library"
        and len(node.get("select_list") or []) == 1
    )
    # It must read as a condition without the parentheses around it as well: in
    # `x) OR (y` the wrapper's own parentheses would close and open it.
    if not plain or parse_tree(cat, f"SELECT 1 FROM library WHERE {pred}\n", deep).get("error"):
        raise InvalidInputError(f"not a single condition: {_shown(pred)} (one WHERE condition over the library's columns, "
                                "no ';', UNION, ORDER BY or LIMIT, its parentheses balanced)")
    where = list(walk(node.get("where_clause")))
    if any(n.get("class") == "SUBQUERY" or n.get("type") == "SUBQUERY" for n in where):
        raise InvalidInputError(f"subqueries are not allowed in a condition: {_shown(pred)}")
    if any(n.get("class") == "STAR" for n in where):
        # COLUMNS(*), COLUMNS('regex'), *: columns picked when it runs, so what a saved
        # condition means would change with the library's columns, unchecked.
        raise InvalidInputError(f"name the columns in a condition: {_shown(pred)} (no *, COLUMNS(...))")
    try:
        cat.con.sql(f"SELECT count(*) FROM ({sql} LIMIT 0)").fetchall()
    except duckdb.Error as e:
        _unless_damaged(cat, e)
        if "expression depth" in str(e):  # (its hint, a SET, is refused everywhere)
            raise InvalidInputError(deep) from None
        raise InvalidInputError(f"bad condition {_shown(pred)}: {first_line(e)} (columns: see the `library` view in "
                                "docs/catalog.md)") from None
    return pred


def refuse_volatile(cat: Catalog, pred: str) -> None:
    """A smart collection's condition must give the same files each time it runs over the
    same catalog: one calling a function DuckDB calls volatile (`random()`, `setseed`,
    `uuid()`) is refused. (`now()` and `current_date` hold through a query: "taken in
    the last 30 days" is a fair condition.)"""
    tree = parse_tree(cat, WRAP.format(predicate=pred), f"condition nested too deeply: {_shown(pred)}")
    names = sorted({n["function_name"].lower() for n in walk(tree) if n.get("class") == "FUNCTION"
                    and isinstance(n.get("function_name"), str)})
    if not names:
        return
    volatile = [r[0] for r in cat.con.execute(
        "SELECT DISTINCT function_name FROM duckdb_functions() WHERE stability = 'VOLATILE' "
        "AND lower(function_name) IN (SELECT unnest(?::VARCHAR[])) ORDER BY 1", [names]).fetchall()]
    if volatile:
        raise InvalidInputError(f"a smart collection's condition must give the same files each time: "
                                f"{'(), '.join(volatile)}() is volatile, another answer (or a changed state) on each run "
                                f"({_shown(pred)}); "
                                "use --where with `tag add` or `collection add` for a one-off pick")


# What reads the clock: functions, and the SQL keywords DuckDB parses as bare names.
CLOCK_FUNCTIONS = {"now", "today", "get_current_time", "get_current_timestamp", "transaction_timestamp",
                   "current_date", "current_time", "current_timestamp", "current_localtime",
                   "current_localtimestamp"}
CLOCK_WORDS = {"current_date", "current_time", "current_timestamp", "localtime", "localtimestamp"}


def reads_clock(cat: Catalog, pred: str) -> bool:
    """Whether a checked condition's answer moves with the time it runs at (`now()`,
    `current_date`, `age(x)` of one argument), so the files it matches change with no
    change to the catalog; or with the time of the last scan (`last_seen`, which every
    scan moves on for every file it finds, changed or not)."""
    tree = parse_tree(cat, WRAP.format(predicate=pred), f"condition nested too deeply: {_shown(pred)}")
    for n in walk(tree):
        if n.get("class") == "FUNCTION" and isinstance(n.get("function_name"), str):
            name = n["function_name"].lower()
            if name in CLOCK_FUNCTIONS or (name == "age" and len(n.get("arguments") or n.get("children") or []) == 1):
                return True
        elif n.get("class") == "COLUMN_REF":
            names = [str(c).lower() for c in n.get("column_names") or []]
            if names in ([w] for w in CLOCK_WORDS) or names[-1:] == [SCAN_CLOCK]:
                return True
    return False


# The `library` column every scan sets anew on each file it finds.
SCAN_CLOCK = "last_seen"


def run_predicate(cat: Catalog, pred: str, what: str = "the condition", limit: int | None = None) -> list[str]:
    """The media_ids of present files matching a checked predicate, in path order (the
    first `limit` of them, if given). A condition can still fail on the data (a CAST of a
    name that is not a number): `InvalidInputError` naming `what` then, never an internal
    error."""
    cut = f" LIMIT {int(limit)}" if limit is not None else ""
    return [r[0] for r in _on_data(cat, WRAP.format(predicate=pred) + " ORDER BY path" + cut, pred, what)]


def predicate_ids(cat: Catalog, pred: str, what: str = "the condition") -> pa.ChunkedArray:
    """`run_predicate`'s media_ids in no order, as Arrow: a search's restriction, where
    half a million of them as Python strings, sorted, took a second."""
    return _on_data(cat, WRAP.format(predicate=pred), pred, what, fetch=lambda rel: rel.to_arrow_table().column(0))


def count_predicate(cat: Catalog, pred: str, what: str = "the condition") -> int:
    """How many present files match a checked predicate (see `run_predicate`)."""
    return int(_on_data(cat, f"SELECT count(*) FROM ({WRAP.format(predicate=pred)})", pred, what)[0][0])


def _on_data(cat: Catalog, sql: str, pred: str, what: str, fetch: Callable[[Any], Any] = lambda rel: rel.fetchall()
             ) -> Any:
    try:
        return fetch(cat.con.sql(sql))
    except duckdb.Error as e:
        _unless_damaged(cat, e)
        raise InvalidInputError(f"{what} {pred!r} fails on this catalog: {first_line(e)}") from None


def _unless_damaged(cat: Catalog, e: duckdb.Error) -> None:
    """A damaged block met while the condition reads the catalog is the catalog's fault,
    not the condition's: `CatalogInvalidError` (exit 5), as for any other read."""
    if is_corruption(e):
        raise damaged(e, cat.path) from None


def matching(cat: Catalog, predicate: str) -> list[str]:
    """The media_ids of present files matching a predicate, in path order."""
    return run_predicate(cat, check_predicate(cat, predicate))
