"""The ledger's tables: one row per run, per check result, per applied fix, and the
alerting state (what each check was last notified as, acknowledgements, deliveries)."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("runbook", sa.String(200), nullable=False, index=True),
    sa.Column("profile", sa.String(200), nullable=False, index=True),
    sa.Column("started_at", sa.DateTime, nullable=False, index=True),
    sa.Column("duration_s", sa.Float, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("exit_code", sa.Integer, nullable=False),
    sa.Column("summary", sa.Text, nullable=False, default=""),
    sa.Column("notebook_path", sa.Text),
    sa.Column("html_path", sa.Text),
    sa.Column("git_sha", sa.String(64)),
    sa.Column("os_user", sa.String(200)),
    sa.Column("run_by", sa.String(200)),
    sa.Column("host", sa.String(200)),
    sa.Column("parameters", sa.Text, nullable=False, default="{}"),
)

# the status board and `history` read the newest runs of one runbook × profile
sa.Index("runs_by_group_and_time", runs.c.runbook, runs.c.profile, runs.c.started_at)

check_results = sa.Table(
    "check_results",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.ForeignKey("runs.run_id"), nullable=False, index=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("value", sa.Float),
    sa.Column("unit", sa.String(32)),
    sa.Column("summary", sa.Text),
)

# Alerting: the state each check was last notified in, acknowledgements, deliveries.
alert_state = sa.Table(
    "alert_state",
    metadata,
    sa.Column("runbook", sa.String(200), primary_key=True),
    sa.Column("profile", sa.String(200), primary_key=True),
    sa.Column("check", sa.String(200), primary_key=True),
    sa.Column("hard_status", sa.String(16), nullable=False),
    sa.Column("soft_status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("notified_status", sa.String(16), nullable=False),
    sa.Column("notified_at", sa.DateTime),
)

acks = sa.Table(
    "acks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("runbook", sa.String(200), nullable=False),
    sa.Column("profile", sa.String(200), nullable=False),
    sa.Column("check", sa.String(200)),  # None: every check of the runbook
    sa.Column("until", sa.DateTime, nullable=False),
    sa.Column("by", sa.String(200), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
)

notifications = sa.Table(
    "notifications",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(64), nullable=False, index=True),
    sa.Column("runbook", sa.String(200), nullable=False),
    sa.Column("profile", sa.String(200), nullable=False, index=True),
    sa.Column("channel", sa.String(200), nullable=False),
    sa.Column("at", sa.DateTime, nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),  # sent | failed | silenced | retried
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("error", sa.Text),
)

audit = sa.Table(
    "audit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime, nullable=False),
    sa.Column("os_user", sa.String(200), nullable=False),
    sa.Column("run_by", sa.String(200)),
    sa.Column("runbook", sa.String(200), nullable=False),
    sa.Column("profile", sa.String(200), nullable=False),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("action", sa.String(200), nullable=False),
    sa.Column("plan_hash", sa.String(32), nullable=False),
    sa.Column("target", sa.Text, nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("changes", sa.Text, nullable=False),
    sa.Column("before_count", sa.Integer),
    sa.Column("after_count", sa.Integer),
    sa.Column("backup", sa.Text),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("error", sa.Text),
)
