"""Times as tables store them: each encoding a sample shows, the cut-off written the way
the column stores it (so SQL compares like with like and an index serves), and values
read back as naive UTC."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from opslib.probes import ProbeError
from opslib.probes.timestamps import Encoding, encoding, of_sample, sampled

MOMENT = datetime(2026, 12, 3, 9, 55, 0, 123456)  # naive UTC, as opslib keeps time
MOMENT_US = (MOMENT - datetime(1970, 1, 1)) // timedelta(microseconds=1)


@pytest.mark.parametrize(
    ("sample", "bound"),
    [
        ("2026-12-03T09:55:00.000Z", "2026-12-03T09:55:00.123Z"),  # goqite, JavaScript
        ("2026-12-03 09:55:00.000000", "2026-12-03 09:55:00.123456"),  # SQLAlchemy on SQLite
        ("2026-12-03 09:55:00", "2026-12-03 09:55:00"),  # SQLite's datetime('now')
        ("2026-12-03T09:55:00+00:00", "2026-12-03T09:55:00+00:00"),  # Python's isoformat
        ("2026-12-03T11:55:00.5+02:00", "2026-12-03T11:55:00.1+02:00"),  # a local offset
        (1764755700, int(MOMENT.replace(tzinfo=UTC).timestamp())),  # Laravel: epoch seconds
        (1764755700123, int(MOMENT.replace(tzinfo=UTC).timestamp() * 1000)),  # Date.now()
        (datetime(2026, 12, 3, 9, 55, tzinfo=UTC), MOMENT.replace(tzinfo=UTC)),  # timestamptz
        (datetime(2026, 12, 3, 9, 55), MOMENT),  # timestamp without time zone, in UTC
        (1764755700123456, MOMENT_US),  # epoch microseconds (Python's time_ns() // 1000)
        (1764755700123456000, MOMENT_US * 1000),  # epoch nanoseconds (Go's UnixNano)
        ("2026-12-01", "2026-12-03"),  # a date alone: a budget period
        (date(2026, 12, 1), MOMENT),  # a SQL date
        ("2026-12-03 09:55:00,5", "2026-12-03 09:55:00,1"),  # a comma before the fraction
        ("2026-12-03 11:55:00+02", "2026-12-03 11:55:00+02"),  # an offset in hours only
    ],
)
def test_a_cutoff_is_written_the_way_the_column_stores_it(sample: object, bound: object) -> None:
    found = of_sample(sample)
    assert found is not None and found.bound(MOMENT) == bound


def test_values_read_back_as_naive_utc() -> None:
    expected = pd.Timestamp(MOMENT.replace(microsecond=0))
    read = {
        "iso": Encoding("iso", "T", 3, "Z").read(pd.Series(["2026-12-03T09:55:00.000Z"])),
        "offset": Encoding("iso").read(pd.Series(["2026-12-03T11:55:00+02:00"])),
        "epoch_s": Encoding("epoch_s").read(pd.Series([int(expected.timestamp())])),
        "epoch_ms": Encoding("epoch_ms").read(pd.Series([int(expected.timestamp()) * 1000])),
        "epoch_us": of_sample(1764755700000000).read(pd.Series([int(expected.timestamp() * 1e6)])),
        "epoch_ns": of_sample(1764755700000000000).read(
            pd.Series([int(expected.timestamp()) * 10**9])
        ),
        "comma": of_sample("2026-12-03 09:55:00,000").read(pd.Series(["2026-12-03 09:55:00,000"])),
        "hours offset": of_sample("2026-12-03 11:55:00+02").read(
            pd.Series(["2026-12-03 11:55:00+02"])
        ),
        "aware": Encoding("native", aware=True).read(
            pd.Series([datetime(2026, 12, 3, 10, 55, tzinfo=timezone(timedelta(hours=1)))])
        ),
    }
    for name, values in read.items():
        assert values.iloc[0] == expected, name
        assert values.dt.tz is None, name


def _column_holding(tmp_path: Path, value: str) -> tuple[sa.Engine, sa.TableClause]:
    """A SQLite table whose one column `started` holds `value`."""
    path = tmp_path / "q.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE q (started TEXT)")
        connection.execute("INSERT INTO q VALUES (?)", (value,))
    return sa.create_engine(f"sqlite:///{path}"), sa.table("q", sa.column("started"))


@pytest.mark.parametrize(
    ("value", "convention", "reason"),
    [
        ("yesterday-ish", "auto", "cannot read 'yesterday-ish' as a time"),
        ("2026-12-03T09:55:00Z", "epoch_s", "declared epoch_s, but the column holds iso"),
    ],
)
def test_a_column_that_is_not_what_the_profile_says_is_refused_naming_the_key(
    tmp_path: Path, value: str, convention: str, reason: str
) -> None:
    engine, table = _column_holding(tmp_path, value)
    with engine.connect() as connection, pytest.raises(ProbeError, match=reason) as refused:
        encoding(connection, table, "started", convention, "queue.columns.started_at")
    assert refused.value.reason.startswith("queue.columns.started_at")


@pytest.mark.parametrize(
    "written",
    [
        lambda moment: moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",  # ISO text with Z
        lambda moment: int(moment.replace(tzinfo=UTC).timestamp()),  # epoch seconds
        lambda moment: int(moment.replace(tzinfo=UTC).timestamp() * 1000),  # epoch ms
    ],
)
def test_spend_in_the_window_is_exact_whatever_the_encoding(tmp_path: Path, written) -> None:  # type: ignore[no-untyped-def]
    """Costs are a table the profile maps too: the window is read in its own encoding."""
    from opslib.clock import utc_now
    from opslib.probes.costs import by_category
    from opslib.profiles import Profile

    now = utc_now()
    rows = [("gpu", 2.5, 1), ("gpu", 1.0, 23), ("api", 0.75, 5), ("gpu", 9.0, 25)]  # hours ago
    path = tmp_path / "costs.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE spend (category TEXT, amount_usd REAL, at)")
        connection.executemany(
            "INSERT INTO spend VALUES (?, ?, ?)",
            [(c, a, written(now - timedelta(hours=h))) for c, a, h in rows],
        )
    profile = Profile.model_validate(
        {"name": "costs", "targets": {"database": {"url": f"sqlite:///{path}"}},
         "costs": {"table": "spend", "at": "at"}}
    )  # fmt: skip
    metric = by_category(profile, window_hours=24)
    assert metric.value == pytest.approx(4.25)  # the $9 of 25 hours ago is outside


@pytest.mark.parametrize(
    ("convention", "written"),
    [
        ("auto", lambda moment: moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"),  # goqite
        ("auto", lambda moment: moment.strftime("%Y-%m-%d %H:%M:%S")),  # datetime('now')
        ("epoch_s", lambda moment: int(moment.replace(tzinfo=UTC).timestamp())),  # litequeue
        ("auto", lambda moment: int(moment.replace(tzinfo=UTC).timestamp() * 1000)),  # Date.now()
    ],
)
def test_a_queue_stored_any_way_has_its_exact_failure_rate_and_throughput(
    tmp_path: Path, convention: str, written
) -> None:  # type: ignore[no-untyped-def]
    """ISO text once matched 1 of 3 stuck jobs and counted 286 finished for 195; epochs once
    read as 'no job finished in the last 24 h', OK. Here the states are integer codes."""
    from opslib.clock import utc_now
    from opslib.probes.queue import failure_rate, stuck_jobs, throughput
    from opslib.profiles import Profile

    now = utc_now()

    def at(hours_ago: float) -> object:
        return written(now - timedelta(hours=hours_ago))

    done = [(n, 2, at(h + 0.1), at(h)) for n, h in enumerate([1, 2, 3, 5, 8, 13, 21])]
    failed = [(10, 3, at(4.1), at(4)), (11, 3, at(30.1), at(30))]  # the second is outside
    running = [(20, 1, at(3), None), (21, 1, at(0.1), None), (22, 0, None, None)]
    path = tmp_path / "queue.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE q (id INTEGER, state INTEGER, started, ended)")
        connection.executemany("INSERT INTO q VALUES (?, ?, ?, ?)", done + failed + running)
    profile = Profile.model_validate(
        {"name": "codes", "targets": {"database": {"url": f"sqlite:///{path}"}},
         "queue": {"table": "q", "timestamps": convention, "stuck_after": "1 h",
                   "columns": {"status": "state", "started_at": "started", "finished_at": "ended",
                               "stage": None, "created_at": None},
                   "statuses": {"queued": 0, "processing": 1, "completed": 2, "failed": [3, 4]}}}
    )  # fmt: skip
    assert failure_rate(profile).value == pytest.approx(100 * 1 / 8)
    assert throughput(profile).value == 7
    assert stuck_jobs(profile).value == 1


def test_an_empty_column_is_sampled_again_once_it_holds_a_value(tmp_path: Path) -> None:
    """ "No value yet" is never kept: kept, it would bind a datetime against the first
    text written, which SQLite compares as a string of another shape."""
    engine, table = _column_holding(tmp_path, None)  # type: ignore[arg-type]
    with engine.connect() as connection:
        assert sampled(connection, table, "started", "k") is None
    with engine.begin() as connection:
        connection.execute(sa.text("INSERT INTO q VALUES ('2026-12-03T09:55:00Z')"))
    with engine.connect() as connection:
        assert sampled(connection, table, "started", "k") == Encoding("iso", "T", 0, "Z")


# the worker writes epochs; created_at is the database's own default, a timestamp
EPOCH_QUEUE = {
    "sqlite": "CREATE TABLE q (id, state, started, ended, failed, touched,"
    " created DEFAULT CURRENT_TIMESTAMP)",
    "postgresql": "CREATE TABLE q (id int, state text, started bigint, ended bigint,"
    " failed bigint, touched bigint, created timestamptz DEFAULT now())",
}


@pytest.mark.parametrize("convention", ["auto", "epoch_s"])
@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_columns_with_no_value_yet_are_read_like_the_columns_the_worker_writes(
    tmp_path: Path, request: pytest.FixtureRequest, store: str, convention: str
) -> None:
    """No job has reported progress or failed through failed_at yet: those columns are all
    NULL. Guessed as timestamps, the stuck job's age was read from an epoch as a timestamp
    (on PostgreSQL, no bigint compares with a timestamp); read like created_at, a default
    timestamp, or refused against a declared epoch_s, nothing was measured; and a failure
    that set only its end was counted nowhere."""
    from opslib.clock import utc_now
    from opslib.probes.queue import failure_rate, stuck_job_rows, throughput
    from opslib.profiles import Profile

    now = utc_now()

    def at(hours_ago: float) -> int:
        return int((now - timedelta(hours=hours_ago)).replace(tzinfo=UTC).timestamp())

    url = (
        f"sqlite:///{tmp_path / 'queue.db'}"
        if store == "sqlite"
        else request.getfixturevalue("server").fresh_database("epoch_queue")
    )
    with sa.create_engine(url).begin() as connection:
        connection.exec_driver_sql(EPOCH_QUEUE[store])
        connection.execute(
            sa.text("INSERT INTO q (id, state, started, ended) VALUES (:i, :s, :b, :e)"),
            [{"i": 1, "s": "done", "b": at(2.1), "e": at(2)},
             {"i": 2, "s": "done", "b": at(3.1), "e": at(3)},
             {"i": 3, "s": "failed", "b": at(4.1), "e": at(4)},
             {"i": 4, "s": "running", "b": at(3), "e": None}],
        )  # fmt: skip
    profile = Profile.model_validate(
        {"name": "epochs", "targets": {"database": {"url": url}},
         "queue": {"table": "q", "stuck_after": "1 h", "timestamps": convention,
                   "columns": {"status": "state", "started_at": "started", "finished_at": "ended",
                               "failed_at": "failed", "updated_at": "touched", "stage": None,
                               "created_at": "created"},
                   "statuses": {"queued": "new", "processing": "running", "completed": "done",
                                "failed": "failed"}}}
    )  # fmt: skip
    (stuck,) = stuck_job_rows(profile).itertuples()
    assert stuck.id == 4 and stuck.age_min == pytest.approx(180, abs=0.2)
    assert failure_rate(profile).value == pytest.approx(100 / 3)
    assert throughput(profile).value == 2


def test_a_budget_period_written_as_dates_covers_today(tmp_path: Path) -> None:
    from opslib.clock import utc_now
    from opslib.probes.budget import usage
    from opslib.profiles import Profile

    today = utc_now().date()
    path = tmp_path / "budget.db"
    with sqlite3.connect(path) as connection:
        connection.execute(
            "CREATE TABLE budget (category, allocated_usd, period_start, period_end)"
        )
        connection.execute("CREATE TABLE spend (category, amount_usd, created_at)")
        connection.execute(
            "INSERT INTO budget VALUES ('gpu', 100, ?, ?)",
            (f"{today - timedelta(days=2)}", f"{today + timedelta(days=28)}"),
        )
        connection.execute(
            "INSERT INTO spend VALUES ('gpu', 25, ?)",
            ((utc_now() - timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S"),),
        )
    profile = Profile.model_validate(
        {"name": "dates", "targets": {"database": {"url": f"sqlite:///{path}"}},
         "costs": {"table": "spend"}, "budget": {"table": "budget"}}
    )  # fmt: skip
    total = usage(profile)[0]
    assert total.value == pytest.approx(25.0)
