"""`opslib demo ideas`: the ideas pipeline of the budget manual, in PostgreSQL and a log
folder, with the problems its health check and budget sentinel exist for.

Planted: a pipeline at work (two ideas finished within the last hour, two in flight, the
newest two waiting); three ideas stuck in processing for 7 to 9 hours; a weekly budget
cycle five days in, at 81.5 % of its $62 in total with the OpenAI category past the 95 %
throttle level and set to run out before the cycle ends; one idea that cost eight times
its category's median; the circuit breaker half-open; logs with a rate limit, evidence
timeouts and a failed deck render, each at least once in the last five hours. No
pipeline process runs, so the morning check finds the pipeline down. Times are relative
to now, so the story holds whenever it is seeded. It writes only into a database it
created itself (marked by an `opslib_demo` table).
"""

from __future__ import annotations

import gzip
import random
from datetime import datetime, timedelta
from pathlib import Path

from opslib import paths
from opslib.clock import utc_now
from opslib.demo import tables as demo_tables
from opslib.demo.common import python_log_line
from opslib.probes import db
from opslib.profiles import Profile

STAGES = ("validation", "research", "deck", "campaign")
ALLOCATED = {"openai": 30.00, "google_ads": 25.00, "infrastructure": 7.00}  # $62 per cycle
SPENT = {"openai": 28.90, "google_ads": 17.50, "infrastructure": 4.10}
CYCLE_DAYS = 7
CYCLE_DAY = 5  # how far into its cycle the demo is
IDEAS = 240
STUCK_HOURS = (7.0, 8.0, 9.0)
OUTLIER_TIMES_MEDIAN = 8
RECENT_MINUTES = (20, 45)  # two ideas finished this long ago: the last hour has work to judge
SCHEMA = [
    """CREATE TABLE ideas (
        idea_id text PRIMARY KEY, title text NOT NULL, current_stage text NOT NULL,
        status text NOT NULL, created_at timestamp NOT NULL, started_at timestamp,
        updated_at timestamp NOT NULL, completed_at timestamp, cost_usd numeric(8, 2),
        error text)""",
    "CREATE INDEX ideas_status_updated ON ideas (status, updated_at)",
    "CREATE INDEX ideas_completed ON ideas (completed_at, status)",
    """CREATE TABLE budgets (
        cycle_id text NOT NULL, category text NOT NULL, allocated_usd numeric(8, 2) NOT NULL,
        period_start timestamp NOT NULL, period_end timestamp NOT NULL,
        PRIMARY KEY (cycle_id, category))""",
    """CREATE TABLE spend (
        id bigserial PRIMARY KEY, idea_id text NOT NULL, category text NOT NULL,
        amount_usd numeric(10, 4) NOT NULL, created_at timestamp NOT NULL)""",
    "CREATE INDEX spend_created ON spend (created_at)",
    """CREATE TABLE pipeline_control (
        key text PRIMARY KEY, value text NOT NULL, updated_at timestamp NOT NULL)""",
]
LOG_ERRORS = (
    "openai request for idea {idea} failed: HTTP 429 rate limit exceeded, retry in {n} s",
    "evidence collector timed out after {n} s for idea {idea}",
    "pitch deck render for idea {idea} failed: template slot missing",
)


def _ideas(now: datetime, rng: random.Random) -> list[dict]:
    """Ideas over the cycle so far, mostly completed, a few failed, queued or in flight."""
    start = now - timedelta(days=CYCLE_DAY)
    rows = []
    for number in range(1, IDEAS + 1):
        created = start + timedelta(minutes=number * (CYCLE_DAY * 24 * 60 - 15) / IDEAS)
        started = created + timedelta(minutes=rng.uniform(1, 20))
        finished = started + timedelta(hours=rng.uniform(0.5, 3.5))
        row = {
            "idea_id": f"idea-{number:04d}", "title": f"Idea {number}",
            "current_stage": STAGES[number % 4], "status": "completed",
            "created_at": created, "started_at": started, "updated_at": finished,
            "completed_at": finished, "cost_usd": None, "error": None,
        }  # fmt: skip
        if finished > now:
            row.update(status="processing", updated_at=now - timedelta(minutes=rng.uniform(1, 30)))
            row["completed_at"] = None
        elif rng.random() < 0.04:
            row.update(status="failed", error="evidence collector timed out")
        rows.append(row)
    for idea, hours in zip(rows[100:], STUCK_HOURS, strict=False):  # stuck: no progress
        idea.update(status="processing", completed_at=None, updated_at=now - timedelta(hours=hours))
        idea["started_at"] = idea["updated_at"] - timedelta(minutes=20)
    for idea, minutes in zip(rows[-6:-4], RECENT_MINUTES, strict=True):  # done in the last hour
        finished = now - timedelta(minutes=minutes)
        idea.update(status="completed", updated_at=finished, completed_at=finished)
    for idea, minutes in zip(rows[-4:-2], (4, 9), strict=True):  # in flight, moving
        idea.update(status="processing", completed_at=None)
        idea["updated_at"] = max(idea["started_at"], now - timedelta(minutes=minutes))
    for idea in rows[-2:]:  # the newest wait for a worker
        idea.update(status="queued", started_at=None, updated_at=idea["created_at"])
        idea["completed_at"] = None
    return rows


def _spend(ideas: list[dict], now: datetime, rng: random.Random) -> list[dict]:
    """Spend rows adding up exactly to SPENT per category, one idea eight times the median."""
    billed = [idea for idea in ideas if idea["status"] != "queued"]
    rows = []
    for category, total in SPENT.items():
        weights = [rng.uniform(0.8, 1.2) for _ in billed]
        if category == "openai":
            weights[len(weights) // 2] = OUTLIER_TIMES_MEDIAN
        cents = _cents(round(total * 100), weights)
        for idea, amount in zip(billed, cents, strict=True):
            moment = min(idea["updated_at"], now - timedelta(minutes=1))
            rows.append(
                {"idea_id": idea["idea_id"], "category": category,
                 "amount_usd": amount / 100, "created_at": moment}
            )  # fmt: skip
    return rows


def _cents(total: int, weights: list[float]) -> list[int]:
    """`total` cents shared in proportion to `weights`, exact to the cent and none negative:
    each share rounded down, the cents left over to the largest remainders."""
    shares = [total * weight / sum(weights) for weight in weights]
    cents = [int(share) for share in shares]
    by_remainder = sorted(range(len(shares)), key=lambda i: cents[i] - shares[i])
    for index in by_remainder[: total - sum(cents)]:
        cents[index] += 1
    return cents


def _budgets(now: datetime) -> list[dict]:
    start = (now - timedelta(days=CYCLE_DAY)).replace(hour=0, minute=0, second=0, microsecond=0)
    cycle = f"cycle-{start:%Y%m%d}"
    return [
        {"cycle_id": cycle, "category": category, "allocated_usd": amount,
         "period_start": start, "period_end": start + timedelta(days=CYCLE_DAYS)}
        for category, amount in ALLOCATED.items()
    ]  # fmt: skip


def write_logs(folder: Path, ideas: list[dict], now: datetime, rng: random.Random) -> None:
    """Today's log plain and yesterday's rotated and compressed, as logrotate leaves them
    (into `folder`, a new one `demo_tables.replace_folder` builds)."""
    entries = []
    for idea in ideas:
        if idea["created_at"] < now - timedelta(days=2):
            continue
        entries.append(
            (idea["created_at"], "pipeline.ingestion", "INFO", f"idea {idea['idea_id']} accepted")
        )
        if idea["started_at"] is not None and rng.random() < 0.08:
            message = rng.choice(LOG_ERRORS).format(idea=idea["idea_id"], n=rng.choice((30, 60)))
            entries.append((idea["started_at"], f"pipeline.{STAGES[1]}", "ERROR", message))
        logger = f"pipeline.{idea['current_stage']}"
        entries.append((idea["updated_at"], logger, "INFO", "stage progress saved"))
    # each kind of failure the manual troubleshoots at least once in the last hours (what
    # high-error-rate reads by default): a rate limit too
    recent = [i for i in ideas if i["started_at"] and now - timedelta(hours=5) < i["started_at"]]
    for idea, message in zip(recent[::2], LOG_ERRORS, strict=False):
        text = message.format(idea=idea["idea_id"], n=30)
        entries.append((idea["started_at"], f"pipeline.{STAGES[1]}", "ERROR", text))
    entries.sort(key=lambda entry: entry[0])
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    older = "".join(python_log_line(*entry) for entry in entries if entry[0] < midnight)
    today = "".join(python_log_line(*entry) for entry in entries if midnight <= entry[0] <= now)
    with gzip.open(folder / "pipeline.log.1.gz", "wt", encoding="utf-8") as stream:
        stream.write(older)
    (folder / "pipeline.log").write_text(today, encoding="utf-8")


def seed(profile: Profile, seed: int = 11) -> dict[str, object]:
    """(Re)create the demo tables and logs; returns what was planted."""
    rng = random.Random(seed)
    now = utc_now()
    ideas = _ideas(now, rng)
    spend = _spend(ideas, now, rng)
    for idea in ideas:  # an idea's cost is what it has spent so far
        idea["cost_usd"] = round(
            sum(row["amount_usd"] for row in spend if row["idea_id"] == idea["idea_id"]), 2
        )
    control = [
        {"key": "circuit_breaker", "value": "half-open", "updated_at": now},
        {"key": "emergency_shutdown", "value": "off", "updated_at": now},
    ]
    rows = {"ideas": ideas, "budgets": _budgets(now), "spend": spend, "pipeline_control": control}
    logs = Path(profile.log_globs()[0]).parent
    demo_tables.refuse_foreign_folder(logs)  # refused before the database is touched
    with db.change(profile) as connection:
        demo_tables.recreate(connection, SCHEMA, rows)
    # only once the database took the story: its logs replace the old ones
    demo_tables.replace_folder(logs, lambda folder: write_logs(folder, ideas, now, rng))
    stuck = [idea["idea_id"] for idea in ideas if idea["updated_at"] < now - timedelta(hours=6)
             and idea["status"] == "processing"]  # fmt: skip
    return {
        "stuck": stuck,
        "budget_pct": round(100 * sum(SPENT.values()) / sum(ALLOCATED.values()), 1),
    }


def where(profile: Profile) -> str:
    """What `seed` writes into, for the command's one line."""
    return f"{profile.database_display()} and {paths.shown(Path(profile.log_globs()[0]).parent)}"
