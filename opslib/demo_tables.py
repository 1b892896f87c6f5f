"""Seeding a demo into a PostgreSQL (or any SQLAlchemy) database the user points at:
only one opslib created itself, marked by an `opslib_demo` table, is ever rewritten."""

from __future__ import annotations

import sqlalchemy as sa

from opslib.errors import OpslibError
from opslib.probes.queue import utc_now

MARKER = "CREATE TABLE opslib_demo (created_at timestamp NOT NULL)"


def recreate(
    connection: sa.Connection, key_table: str, schema: list[str], rows: dict[str, list[dict]]
) -> None:
    """Drop and recreate the demo's tables (those `schema` creates, and the marker),
    then insert `rows` by table. A database whose `key_table` opslib did not create is
    refused before anything is dropped."""
    existing = set(sa.inspect(connection).get_table_names())
    if key_table in existing and "opslib_demo" not in existing:
        raise OpslibError(
            f"this database already has a table {key_table} that opslib did not create; "
            "the demo only seeds an empty database or its own"
        )
    statements = [*schema, MARKER]
    tables = [
        statement.split()[2] for statement in statements if statement.startswith("CREATE TABLE")
    ]
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
