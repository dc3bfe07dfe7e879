"""The house rules that are about the code's shape (docs/architecture.md): no import circle
anywhere in bot/, conversations/ and storage/ (named ones first: the app and its features, the
CLI and the feature CLIs, the digest and its view); SQL helpers of storage/ are not called from
outside it.

Imports are read with `ast`, so every import counts: top level, under TYPE_CHECKING, and
inside functions (a function-local import only hides a circle).
"""

from __future__ import annotations

import ast
import functools
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "conversations", "storage")
# Import circles that are known and being removed on another branch: each entry is exactly one
# circle's modules. Nothing else may join this list; delete an entry when its fix lands (the
# test below fails while an entry is no longer a circle).
KNOWN_CIRCLES: list[frozenset[str]] = []


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


@functools.cache
def _graph() -> dict[str, set[str]]:
    # In a fresh interpreter: CPython 3.11's ast.parse can fail with "AST constructor recursion
    # depth mismatch" in a process whose recursion bookkeeping earlier tests disturbed (a fresh
    # thread was not enough).
    script = (
        "import json, tests.test_house as h; "
        "print(json.dumps({k: sorted(v) for k, v in h._build_graph().items()}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return {k: set(v) for k, v in json.loads(done.stdout).items()}


def _build_graph() -> dict[str, set[str]]:
    modules = _modules()

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    edges: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            found: list[str | None] = []
            if isinstance(node, ast.Import):
                found = [resolve(alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = module.split(".")
                    if path.name != "__init__.py":
                        parts = parts[:-1]
                    parts = parts[: len(parts) - node.level + 1]
                    base = ".".join(parts + ([node.module] if node.module else []))
                for alias in node.names:  # `from pkg import module` or `from module import name`
                    full = f"{base}.{alias.name}"
                    found.append(full if full in modules else resolve(base))
            edges[module].update(m for m in found if m is not None and m != module)
    return edges


def _reaches(edges: dict[str, set[str]], start: str, goal: str) -> bool:
    seen: set[str] = set()
    stack = [start]
    while stack:
        here = stack.pop()
        if here == goal:
            return True
        if here not in seen:
            seen.add(here)
            stack.extend(edges.get(here, ()))
    return False


def _circle(edges: dict[str, set[str]], a: str, b: str) -> bool:
    return _reaches(edges, a, b) and _reaches(edges, b, a)


def _circles(edges: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module: the import circles."""
    reach = {m: _reachable(edges, m) for m in edges}
    found: set[frozenset[str]] = set()
    for module, reached in reach.items():
        component = frozenset(m for m in reached if module in reach[m])
        if len(component) > 1:
            found.add(component)
    return sorted(found, key=sorted)


def _reachable(edges: dict[str, set[str]], start: str) -> set[str]:
    seen = {start}
    stack = [start]
    while stack:
        for nxt in edges.get(stack.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def _describe(edges: dict[str, set[str]], circle: frozenset[str]) -> str:
    inside = [f"{m} -> {', '.join(sorted(edges[m] & circle))}" for m in sorted(circle)]
    return f"{{{', '.join(sorted(circle))}}}: " + "; ".join(inside)


def test_the_circle_finder_finds_circles() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e", "d"}, "f": {"a"}}
    assert _circles(edges) == [frozenset({"a", "b", "c"})]
    assert _describe(edges, frozenset({"a", "b", "c"})) == "{a, b, c}: a -> b; b -> c; c -> a"


def test_no_import_circle_anywhere() -> None:
    edges = _graph()
    assert {"bot.app", "conversations.common", "storage.repo"} <= edges.keys()
    circles = [c for c in _circles(edges) if c not in KNOWN_CIRCLES]
    assert not circles, (
        "import circles (docs/architecture.md, 'No import circles': move what both sides need "
        "into a small module below both, or let the parent pass it in):\n"
        + "\n".join(_describe(edges, c) for c in circles)
    )


def test_the_known_circles_are_still_circles() -> None:
    """An entry of KNOWN_CIRCLES whose fix has landed must go, so that it cannot come back."""
    circles = _circles(_graph())
    gone = [sorted(c) for c in KNOWN_CIRCLES if c not in circles]
    assert not gone, f"no longer import circles: delete them from KNOWN_CIRCLES: {gone}"


def test_the_app_and_its_features_import_no_circle() -> None:
    edges = _graph()
    features = [m for m in edges if m.endswith(".feature")] + ["bot.features", "bot.registry"]
    assert "bot.ops.feature" in features and "bot.escalation.feature" in features
    assert [m for m in features if _circle(edges, "bot.app", m)] == []


def test_the_cli_and_the_feature_clis_import_no_circle() -> None:
    edges = _graph()
    clis = [m for m in edges if m.endswith("cli") and m != "bot.cli"] + ["bot.ops.watchdog"]
    assert "bot.sandbox.cli" in clis and "bot.dataout.audit_cli" in clis
    assert [m for m in clis if _circle(edges, "bot.cli", m)] == []
    assert [m for m in clis if _reaches(edges, m, "bot.cli")] == []


def test_the_digest_and_the_staff_views_import_no_circle() -> None:
    edges = _graph()
    assert not _circle(edges, "bot.followup.digest", "conversations.staff_schedule")
    assert not _circle(edges, "bot.followup.digest", "conversations.digest_view")


def test_storage_helpers_are_called_only_inside_storage() -> None:
    """No exceptions: `repo._one` / `repo._all` (called, or imported by name) only in storage/."""
    offenders = []
    for package in ("bot", "conversations"):
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            text = path.read_text(encoding="utf-8")
            if "repo._one(" in text or "repo._all(" in text or _imports_private(path):
                offenders.append(rel)
    assert offenders == []


# `from storage.repo import _one` (or `_all`), also inside a parenthesised import list. A regex,
# not ast: see _graph for why this process does not parse.
_PRIVATE_IMPORT = re.compile(r"from +storage\.repo +import +(\([^)]*|[^\n]*)\b_(one|all)\b")


def _imports_private(path: Path) -> bool:
    return _PRIVATE_IMPORT.search(path.read_text(encoding="utf-8")) is not None


def test_enrolment_and_the_web_links_import_no_circle() -> None:
    edges = _graph()
    assert _reaches(edges, "bot.services.enrolment", "bot.web.links")
    assert not _reaches(edges, "bot.web.links", "bot.services.enrolment")


# SQL runs only in storage/ (named, typed functions there): no statement is executed, and no
# SQL text is written, anywhere else in bot/ and conversations/. Found with regexes over the
# text, line by line (see _graph for why this process does not parse): a call of the
# connection's or the Database's execute/fetch helpers, or a string literal that starts with a
# SQL keyword (upper case, as the code writes SQL; "With day 0 …" is English, not SQL).
_SQL_CALL = re.compile(
    r"\.(execute|executemany|executescript|execute_fetchall|execute_insert"
    r"|scalar|fetchone|fetchall|fetchmany)\("
)
_SQL_TEXT = re.compile(
    r"(?<![\w\"'])[rRfFbBuU]{0,2}(\"|')(SELECT|INSERT|UPDATE|DELETE|REPLACE|PRAGMA|BEGIN"
    r"|COMMIT|ROLLBACK|SAVEPOINT|RELEASE|VACUUM|ATTACH|WITH|CREATE|DROP|ALTER)\b"
)
# Files (or folders, ending in "/") outside storage/ that may run SQL, for good: they work on
# the database file itself (the backup API, integrity_check, PRAGMAs on a file being restored),
# or are the sandbox's own demo queries.
SQL_OUTSIDE_STORAGE = (
    "bot/ops/restore.py",
    "bot/dataout/backup.py",
    "bot/sandbox/",
)
# Files whose SQL is being moved into storage/ on branch sql-services. Delete each entry when
# that lands (the test below fails while an entry no longer has SQL); nothing may join it.
SQL_BEING_MOVED = (
    "bot/sender.py",
    "bot/messenger.py",
    "bot/services/diary.py",
    "bot/services/enrolment.py",
    "bot/services/patient_settings.py",
    "bot/escalation/service.py",
    "bot/escalation/corrections.py",
    "bot/dataout/dataset.py",
    "bot/dataout/audit_cli.py",
)


def _sql_lines(path: Path) -> list[int]:
    """Line numbers of `path` that run SQL or hold SQL text (comment lines do not count)."""
    return [
        number
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if not line.lstrip().startswith("#") and (_SQL_CALL.search(line) or _SQL_TEXT.search(line))
    ]


def _sql_allowed(rel: str) -> bool:
    return rel in SQL_BEING_MOVED or any(
        rel.startswith(entry) if entry.endswith("/") else rel == entry
        for entry in SQL_OUTSIDE_STORAGE
    )


def test_the_sql_finder_finds_sql(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        'row = await rt.db.fetchone("SELECT 1")\n'
        "await conn.execute(sql, params)\n"
        "    \"UPDATE patients SET status = 'paused' WHERE id = ?\",\n"
        '    f"DELETE FROM x WHERE {where}",\n'
        '# await conn.execute("SELECT 1") in a comment\n'
        'raise LifecycleError(N_("With day 0 on {date} the follow-up would be over."))\n'
        "await repo.patient_by_id(conn, 1)\n",
        encoding="utf-8",
    )
    assert _sql_lines(sample) == [1, 2, 3, 4]


def test_sql_lives_in_storage() -> None:
    """The developers' guide: SQL lives in `storage/`; no raw SQL in handlers or features."""
    offenders = []
    for package in ("bot", "conversations"):
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if not _sql_allowed(rel):
                offenders += [f"{rel}:{number}" for number in _sql_lines(path)]
    assert not offenders, (
        "SQL outside storage/ (move each statement into a named, typed function of the storage"
        " module that owns the table):\n" + "\n".join(offenders)
    )


def test_the_files_whose_sql_is_being_moved_still_have_sql() -> None:
    """An entry of SQL_BEING_MOVED whose SQL has moved must go, so that SQL cannot come back."""
    done = [rel for rel in SQL_BEING_MOVED if not _sql_lines(ROOT / rel)]
    assert not done, f"no SQL left: delete them from SQL_BEING_MOVED: {done}"
