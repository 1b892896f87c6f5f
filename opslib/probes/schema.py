"""SQLite schema drift: the tables, columns, indexes, views and triggers of the database
(`.schema`, `.indexes`) against a baseline recorded earlier.

The baseline is a JSON file (owner-only) at `targets.database.schema_baseline`, by
default beside the database as `<file>.schema.json`; the data-integrity runbook records
it through the plan gate (`opslib.actions.schema`). Without one, nothing can be said
about drift: UNKNOWN, naming the key.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

from opslib import paths
from opslib.probes import Metric, ProbeError, db
from opslib.profiles import Profile

BASELINE_KEY = "targets.database.schema_baseline"
# every object of the schema but SQLite's own (sqlite_sequence, sqlite_autoindex_*)
OBJECTS = """
SELECT type, name, tbl_name, sql FROM sqlite_master
WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY type, name
"""
COLUMNS = 'SELECT name, type, "notnull", dflt_value, pk FROM pragma_table_info(:table) ORDER BY cid'
KINDS = ("table", "index", "view", "trigger")


def baseline_path(profile: Profile) -> Path:
    """Where the profile's schema baseline lives (see the module docstring)."""
    raw = profile.targets.database.schema_baseline if profile.targets.database else None
    if raw:
        return paths.resolve_path(profile.expand(raw, BASELINE_KEY))
    database = profile.database_path()
    return database.with_name(f"{database.name}.schema.json")


def _sql(text: str | None) -> str:
    return re.sub(r"\s+", " ", text or "").strip()


def _column(name: str, kind: str, notnull: int, default: Any, pk: int) -> str:
    words = [kind or "untyped"]
    words += ["NOT NULL"] if notnull else []
    words += [f"DEFAULT {default}"] if default is not None else []
    words += ["PRIMARY KEY"] if pk else []
    return " ".join(words)


def read_schema(profile: Profile) -> dict[str, dict[str, Any]]:
    """The database's schema as the baseline stores it: per kind, name -> its facts."""
    schema: dict[str, dict[str, Any]] = {kind: {} for kind in KINDS}
    with db.connect(profile) as connection:
        for kind, name, table, sql in connection.execute(sa.text(OBJECTS)).all():
            if kind == "table":
                columns = connection.execute(sa.text(COLUMNS), {"table": name}).all()
                schema["table"][name] = {
                    "sql": _sql(sql),
                    "columns": {row[0]: _column(*row) for row in columns},
                }
            elif kind in schema:
                schema[kind][name] = {"table": table, "sql": _sql(sql)}
    return schema


def digest(schema: dict[str, Any]) -> str:
    """A short fingerprint of a schema, for a plan to name the one it recorded."""
    canonical = json.dumps(schema, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def load_baseline(profile: Profile) -> dict[str, Any] | None:
    """The recorded baseline (`recorded_at`, `schema`), or None when none is recorded."""
    path = baseline_path(profile)
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
        schema = recorded["schema"]
        if not all(isinstance(schema.get(kind), dict) for kind in KINDS):
            raise ValueError("no tables, indexes, views or triggers in it")
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ProbeError(
            f"the schema baseline {paths.shown(path)} ({BASELINE_KEY}) cannot be read: {exc}; "
            "record it again with the data-integrity runbook"
        ) from None
    return recorded


def differences(baseline: dict[str, Any], current: dict[str, Any]) -> list[dict[str, str]]:
    """What changed from `baseline` to `current`, one row per difference (object, change,
    detail), in a stable order: tables and their columns, then indexes, views, triggers."""
    rows = []
    old_tables, new_tables = baseline["table"], current["table"]
    for name in sorted(old_tables.keys() | new_tables.keys()):
        old, new = old_tables.get(name), new_tables.get(name)
        if old is None:
            rows.append(_row(f"table {name}", "added", new["sql"]))
        elif new is None:
            rows.append(_row(f"table {name}", "removed", old["sql"]))
        else:
            rows += _column_changes(name, old["columns"], new["columns"])
            if old["sql"] != new["sql"] and old["columns"] == new["columns"]:
                rows.append(_row(f"table {name}", "changed", new["sql"]))
    for kind in KINDS[1:]:
        old_objects, new_objects = baseline[kind], current[kind]
        for name in sorted(old_objects.keys() | new_objects.keys()):
            old, new = old_objects.get(name), new_objects.get(name)
            if old is None:
                rows.append(_row(f"{kind} {name}", "added", new["sql"]))
            elif new is None:
                rows.append(_row(f"{kind} {name}", "removed", old["sql"]))
            elif old != new:
                rows.append(_row(f"{kind} {name}", "changed", new["sql"]))
    return rows


def _column_changes(table: str, old: dict[str, str], new: dict[str, str]) -> list[dict[str, str]]:
    rows = []
    for column in [*old, *(name for name in new if name not in old)]:
        before, after = old.get(column), new.get(column)
        if before is None:
            rows.append(_row(f"column {table}.{column}", "added", after))
        elif after is None:
            rows.append(_row(f"column {table}.{column}", "removed", before))
        elif before != after:
            rows.append(_row(f"column {table}.{column}", "changed", f"{before} -> {after}"))
    return rows


def _row(what: str, change: str, detail: str) -> dict[str, str]:
    return {"object": what, "change": change, "detail": detail}


def line(row: dict[str, str]) -> str:
    """One difference as a sentence: `index spots_month added: CREATE INDEX ...`."""
    return f"{row['object']} {row['change']}: {row['detail']}"


def drift(profile: Profile) -> Metric:
    """How many tables, columns, indexes, views and triggers differ from the baseline."""
    recorded = load_baseline(profile)
    if recorded is None:
        raise ProbeError(
            f"no schema baseline recorded at {paths.shown(baseline_path(profile))} "
            f"({BASELINE_KEY}); record one with the data-integrity runbook (apply)"
        )
    rows = differences(recorded["schema"], read_schema(profile))
    since = f"the baseline recorded {recorded.get('recorded_at', '(time unknown)')}"
    if not rows:
        return Metric(0, f"the schema matches {since}")
    table = pd.DataFrame(rows)
    return Metric(
        len(rows), f"{len(rows)} difference(s) from {since}; first: {line(rows[0])}", table
    )
