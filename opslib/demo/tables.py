"""Seeding a demo into a PostgreSQL (or any SQLAlchemy) database, or a folder, the user
points at: only one opslib created itself (marked by an `opslib_demo` table, or a
`.opslib-demo` file) is ever rewritten."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from opslib.clock import utc_now
from opslib.demo.common import build_aside
from opslib.errors import OpslibError

MARKER = "CREATE TABLE opslib_demo (created_at timestamp NOT NULL)"


def recreate(connection: sa.Connection, schema: list[str], rows: dict[str, list[dict]]) -> None:
    """Drop and recreate the demo's tables (those `schema` creates, and the marker),
    then insert `rows` by table. A database holding any of those tables that opslib did
    not create is refused before anything is dropped."""
    statements = [*schema, MARKER]
    tables = [
        statement.split()[2] for statement in statements if statement.startswith("CREATE TABLE")
    ]
    existing = set(sa.inspect(connection).get_table_names())
    # another pipeline's tables (a real pipeline_control) are as precious as the key table
    foreign = sorted(set(tables) & existing) if "opslib_demo" not in existing else []
    if foreign:
        raise OpslibError(
            f"this database already has table(s) {', '.join(foreign)} that opslib did not "
            "create; the demo only seeds an empty database or its own"
        )
    for table in tables:
        connection.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
    for statement in statements:
        connection.exec_driver_sql(statement)
    metadata = sa.MetaData()
    metadata.reflect(connection, only=list(rows))
    for table, values in rows.items():
        if values:
            connection.execute(metadata.tables[table].insert(), values)
    connection.execute(sa.text("INSERT INTO opslib_demo VALUES (:now)"), {"now": utc_now()})


FOLDER_MARKER = ".opslib-demo"


def refuse_foreign_folder(folder: Path) -> None:
    """A folder with files opslib did not put there (production logs behind a variable
    that was not unset) is never the demo's to replace."""
    if folder.exists() and any(folder.iterdir()) and not (folder / FOLDER_MARKER).exists():
        raise OpslibError(
            f"{folder} already holds files opslib did not create; "
            "the demo only writes into an empty folder or its own"
        )


def replace_folder(folder: Path, build: Callable[[Path], object]) -> None:
    """Replace `folder` (empty, missing or the demo's own) by what `build` writes, marked
    as the demo's; built aside first (see `common.build_aside`)."""
    refuse_foreign_folder(folder)

    def marked(staging: Path) -> None:
        build(staging)
        (staging / FOLDER_MARKER).write_text("created by opslib demo\n")

    build_aside(folder, marked)
