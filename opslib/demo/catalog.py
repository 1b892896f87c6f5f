"""`opslib demo catalog`: the catalog sync pipeline's folder, as its manual describes it.

Twelve weekly monitoring-cycle summaries (the latest one worse than the rest: slower,
~93 % of its imports successful, past the memory limit), a week of
monitor logs (older days rotated and compressed) whose error rate rises over the last
hours with timeouts, rate limiting and duplicate-key failures, and the pipeline's
configuration with a JSON Schema for it, and two configuration backups past their 90-day
retention. Times are relative to now, so the story holds.
"""

from __future__ import annotations

import gzip
import json
import random
from datetime import datetime, timedelta
from pathlib import Path

from opslib import paths
from opslib.clock import utc_now
from opslib.demo.common import build_aside, log_line, set_mtime

WEEKS = 12
DAYS_OF_LOGS = 7
FETCHES_PER_HOUR = 120
CONFIG = {
    "batch_size": 50,
    "schedule": {"weekday": "sunday", "hour": 2},
    "quality_thresholds": {"import_success_rate": 0.98, "validation_pass_rate": 0.95},
    "notifications": {"email": "ops@example.com", "on_failure": True},
}
CONFIG_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["batch_size", "schedule", "quality_thresholds"],
    "properties": {
        "batch_size": {"type": "integer", "minimum": 1, "maximum": 500},
        "schedule": {"type": "object", "required": ["weekday", "hour"]},
        "quality_thresholds": {"type": "object"},
        "notifications": {"type": "object"},
    },
}
ERRORS = (
    "fetch fragrance {item} failed: HTTP 429 rate limit exceeded, retry in {n} s",
    "fetch fragrance {item} failed: timeout after {n} s",
    "import of fragrance {item} failed: duplicate key value violates unique constraint "
    '"fragrances_slug_key"',
)


# (age in days, name): two plain logs past the 30-day compression age, an archive past 90
OLD_LOGS = (
    (35, "pipeline_errors_{date:%Y%m%d}.log"),
    (48, "pipeline_errors_{date:%Y%m%d}.log"),
    (120, "pipeline_errors_{date:%Y%m%d}.log.gz"),
)


# ages in days of configuration backups from earlier months, past the manual's 90-day
# retention: what the config_backups cleanup deletes
OLD_CONFIG_BACKUPS = (95, 120)


def demo_dir() -> Path:
    return paths.data_dir() / "catalog"


def present() -> bool:
    """Whether the demo is already there (`opslib demo --if-stale` leaves it alone then)."""
    return demo_dir().exists()


def _summary(week_start: datetime, rng: random.Random, worse: bool) -> dict:
    imported = rng.randint(4, 20)
    failed = rng.randint(0, 2) + (14 if worse else 0)
    return {
        "cycle": week_start.strftime("%G-W%V"),
        "started_at": week_start.isoformat() + "Z",
        "new_fragrances_imported": imported,
        "fragrances_updated": rng.randint(150, 260),
        "failed": failed,
        "execution_time_minutes": round(rng.uniform(9, 16) * (2.6 if worse else 1), 1),
        "system_health_score": rng.randint(84, 96) - (25 if worse else 0),
    }


def _counts(summary: dict, rng: random.Random, worse: bool) -> dict:
    """What each step of the cycle tried and how much of it failed (the manual's quality
    KPIs are rates of these), and the cycle's peak memory. The latest cycle's imports are
    ~93 % successful, under the manual's 98 %; its memory is past the 500 MB limit."""
    imports = summary["new_fragrances_imported"] + summary["fragrances_updated"]
    attempted = imports + summary["failed"]
    return {
        "import_attempted": attempted,
        "import_failed": summary["failed"],
        "validation_attempted": attempted,
        "validation_failed": rng.randint(0, 3),
        "duplicate_detection_attempted": attempted,
        "duplicate_detection_failed": rng.randint(0, 1),
        "embedding_attempted": imports,
        "embedding_failed": rng.randint(0, 2),
        "peak_memory_mb": rng.randint(210, 320) + (300 if worse else 0),
    }


def _log_lines(day: datetime, now: datetime, rng: random.Random) -> list[str]:
    """One day of the monitor's log; errors climb to ~12 % over the last six hours."""
    lines = []
    for hour in range(24):
        start = day + timedelta(hours=hour)
        if start > now:
            break
        error_share = 0.12 if now - start < timedelta(hours=6) else 0.01
        for fetch in range(FETCHES_PER_HOUR):
            moment = start + timedelta(seconds=fetch * 3600 / FETCHES_PER_HOUR)
            if moment > now:
                break
            item = rng.randint(1000, 99999)
            if rng.random() < error_share:
                message = rng.choice(ERRORS).format(item=item, n=rng.choice((30, 60, 120)))
                lines.append(log_line(moment, "ERROR", message))
            else:
                lines.append(
                    log_line(
                        moment, "INFO", f"fetch fragrance {item}: 200 in {rng.randint(80, 900)} ms"
                    )
                )
        lines.append(log_line(start, "INFO", "scheduler heartbeat"))
    return lines


def create(seed: int = 5) -> Path:
    """(Re)create the catalog demo folder, built aside before it replaces the old one
    (see `build_aside`); returns it."""
    return build_aside(demo_dir(), lambda root: _fill(root, seed))


def _fill(root: Path, seed: int) -> None:
    """Write the demo's files into the empty folder `root`."""
    rng = random.Random(seed)
    counts = random.Random(seed + 1)  # its own stream: the other numbers stay as they were
    now = utc_now()
    (root / "summaries").mkdir(parents=True)
    (root / "logs").mkdir()
    (root / "config" / "schema").mkdir(parents=True)
    last_sunday = (now - timedelta(days=(now.weekday() + 1) % 7)).replace(
        hour=2, minute=0, second=0, microsecond=0
    )
    for week in range(WEEKS):
        started = last_sunday - timedelta(weeks=WEEKS - 1 - week)
        summary = _summary(started, rng, worse=week == WEEKS - 1)
        summary |= _counts(summary, counts, worse=week == WEEKS - 1)
        path = root / "summaries" / f"cycle-{summary['cycle']}.json"
        path.write_text(json.dumps(summary, indent=2))
        set_mtime(path, started + timedelta(minutes=summary["execution_time_minutes"]))
    for days_ago in range(DAYS_OF_LOGS - 1, -1, -1):
        day = (now - timedelta(days=days_ago)).replace(hour=0, minute=0, second=0, microsecond=0)
        text = "".join(_log_lines(day, now, rng))
        name = f"ongoing_monitor_{day:%Y%m%d}.log"
        if days_ago >= 2:  # rotated and compressed
            path = root / "logs" / f"{name}.gz"
            with gzip.open(path, "wt", encoding="utf-8") as stream:
                stream.write(text)
        else:
            path = root / "logs" / name
            path.write_text(text)
        set_mtime(path, min(day + timedelta(days=1), now))
    for days_ago, name in OLD_LOGS:  # what monthly-maintenance archives or deletes
        moment = now - timedelta(days=days_ago)
        path = root / "logs" / name.format(date=moment)
        line = log_line(moment, "INFO", "pipeline_errors log opened")
        if path.suffix == ".gz":
            with gzip.open(path, "wt", encoding="utf-8") as stream:
                stream.write(line)
        else:
            path.write_text(line)
        set_mtime(path, moment)
    (root / "config" / "monitoring_config.json").write_text(json.dumps(CONFIG, indent=2))
    (root / "config" / "schema" / "monitoring_config.schema.json").write_text(
        json.dumps(CONFIG_SCHEMA, indent=2)
    )
    (root / "config" / "backup").mkdir()
    for days_ago in OLD_CONFIG_BACKUPS:
        moment = now - timedelta(days=days_ago)
        path = root / "config" / "backup" / f"monitoring_config_{moment:%Y%m%d}.json"
        path.write_text(json.dumps(CONFIG, indent=2))
        set_mtime(path, moment)
