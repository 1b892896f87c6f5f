"""Log triage: patterns, timestamps, and incremental scans across rotation and truncation."""

from __future__ import annotations

import gzip
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from opslib.logscan import Offsets, Scanner, normalize


def _line(number: int, level: str = "ERROR") -> str:
    stamp = (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}Z {level} item {number} failed\n"


def _scan(offsets: Offsets, files: list[Path]) -> list[int]:
    """Scan and return the item numbers of the error lines counted."""
    scanner = Scanner(None)
    offsets.scan(files, scanner)
    (pattern,) = scanner.triage.patterns.values() or [None]
    return [] if pattern is None else [pattern.count]


def test_normalize_folds_ids_numbers_paths_and_addresses() -> None:
    message = (
        "job 4711 for 3f2c1a9e-1d2b-4c3d-9e8f-0a1b2c3d4e5f at /var/data/in/x.json "
        "from 10.0.0.7:5432 hash deadbeef1234 failed after 2.5 s"
    )
    assert normalize(message) == (
        "job <n> for <uuid> at <path> from <ip> hash <hex> failed after <n> s"
    )


def test_syslog_and_iso_lines_and_requests_are_counted(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    syslog = (
        now.strftime("%b %d %H:%M:%S").replace(" 0", "  ", 1)
        if now.day < 10
        else now.strftime("%b %d %H:%M:%S")
    )
    log = tmp_path / "app.log"
    log.write_text(
        f"{syslog} host app[12]: ERROR upstream 503 for GET /items\n"
        f"[{now:%Y-%m-%d %H:%M:%S},123] INFO GET /items 200\n"
        f"{now:%Y-%m-%dT%H:%M:%S}Z INFO GET /health 200\n"
        "  continuation line without a stamp ERROR\n"
    )
    scanner = Scanner(now - timedelta(hours=1), requests=r"\bGET /")
    scanner.read(log)
    found = scanner.triage
    assert dict(found.levels) == {"ERROR": 1, "INFO": 2}
    assert found.requests == 3 and found.lines == 3


def test_rotation_by_rename_and_by_compression_loses_and_repeats_nothing(tmp_path: Path) -> None:
    live = tmp_path / "app.log"
    offsets = Offsets(tmp_path / "state.json")
    live.write_text("".join(_line(n) for n in range(3)))
    assert _scan(offsets, [live]) == [3]
    with live.open("a") as stream:  # two more lines, then rotation by rename
        stream.write(_line(3) + _line(4))
    live.rename(tmp_path / "app.log.1")
    live.write_text(_line(5))
    assert _scan(offsets, [tmp_path / "app.log.1", live]) == [3]  # lines 3, 4 and 5
    with live.open("a") as stream:  # one more, then the rotated file is compressed
        stream.write(_line(6))
    rotated = tmp_path / "app.log.1"
    with gzip.open(tmp_path / "app.log.1.gz", "wb") as compressed:
        compressed.write(rotated.read_bytes())
    rotated.unlink()
    assert _scan(offsets, [tmp_path / "app.log.1.gz", live]) == [1]  # only line 6


def test_truncation_starts_the_file_over(tmp_path: Path) -> None:
    live = tmp_path / "app.log"
    offsets = Offsets(tmp_path / "state.json")
    live.write_text("".join(_line(n) for n in range(10)))
    assert _scan(offsets, [live]) == [10]
    with live.open("w") as stream:  # copytruncate: emptied, then written again
        stream.write(_line(10) + _line(11))
    assert _scan(offsets, [live]) == [2]


def test_an_unfinished_last_line_waits_for_the_next_scan(tmp_path: Path) -> None:
    live = tmp_path / "app.log"
    offsets = Offsets(tmp_path / "state.json")
    live.write_text(_line(0) + _line(1).rstrip("\n"))
    assert _scan(offsets, [live]) == [1]
    with live.open("a") as stream:
        stream.write("\n" + _line(2))
    assert _scan(offsets, [live]) == [2]


def test_window_skips_old_blocks_and_keeps_out_of_order_lines_exact(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    old = (now - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%S")
    recent = (now - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S")
    log = tmp_path / "big.log"
    with log.open("w") as stream:
        for number in range(60_000):  # several blocks of old lines
            stream.write(f"{old}Z ERROR old item {number} padding padding padding\n")
        stream.write(f"{recent}Z ERROR new item\n{old}Z ERROR late old line\n")
    os.utime(log)
    scanner = Scanner(now - timedelta(hours=1))
    scanner.read(log)
    assert scanner.triage.levels["ERROR"] == 1
    assert list(scanner.triage.patterns) == ["new item"]


def test_a_profile_timestamp_format_dates_its_lines(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    old = now - timedelta(days=2)
    log = tmp_path / "app.log"
    log.write_text(
        f"{old:%d/%m/%Y %H:%M:%S} ERROR too old to count\n"
        f"{now:%d/%m/%Y %H:%M:%S} ERROR disk quota exceeded for user 1001\n"
        f"{now:%d/%m/%Y %H:%M:%S} INFO fine\n"
    )
    scanner = Scanner(now - timedelta(hours=1), formats=("%d/%m/%Y %H:%M:%S",))
    scanner.read(log)
    assert dict(scanner.triage.levels) == {"ERROR": 1, "INFO": 1}
    assert list(scanner.triage.patterns) == ["disk quota exceeded for user <n>"]


def test_an_unsupported_timestamp_directive_is_a_profile_error(tmp_path: Path) -> None:
    import pytest

    from opslib.errors import ProfileError
    from opslib.profiles import load_profile

    path = tmp_path / "p.yaml"
    path.write_text(
        "name: p\ntargets:\n  logs:\n    paths: [x.log]\n    timestamp_formats: ['%d %Q']\n"
    )
    with pytest.raises(ProfileError, match=r"timestamp_formats.*%Q is not supported"):
        load_profile(str(path))


def test_a_line_is_an_error_by_its_level_not_by_a_word_in_its_message(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    log = tmp_path / "app.log"
    log.write_text(
        f"{now:%Y-%m-%dT%H:%M:%S}Z INFO retried after ERROR from upstream, item 7\n"
        f"{now:%Y-%m-%dT%H:%M:%S}Z ERROR upstream said ERROR twice\n"
        f"{now:%Y-%m-%dT%H:%M:%S}Z WARN queue 14290 items long\n"
        f"{now:%Y-%m-%dT%H:%M:%S}Z INFO GET /x 429 in 12 ms\n"
        f"{now:%Y-%m-%dT%H:%M:%S}Z INFO request 3f2c1a9e-1d2b-429a-9e8f-0a1b2c3d4e5f done\n"
    )
    scanner = Scanner(None)
    scanner.read(log)
    found = scanner.triage
    assert dict(found.levels) == {"INFO": 3, "ERROR": 1, "WARNING": 1}
    assert list(found.patterns) == ["upstream said ERROR twice"]
    assert found.rate_limited == 1  # the 429 response, not queue 14290 nor a UUID's 429a


def test_reading_files_in_parallel_gives_the_same_triage(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from opslib import logscan

    files = []
    for day in range(3):
        path = tmp_path / f"app-{day}.log"
        path.write_text("".join(_line(n + 100 * day) + _line(n, "INFO") for n in range(200)))
        files.append(path)
    sequential = Scanner(None)
    for path in files:
        sequential.read(path)
    monkeypatch.setattr(logscan, "PARALLEL_FROM_BYTES", 0)
    parallel = logscan.scan(files, None)
    expected = sequential.triage
    assert parallel.levels == expected.levels and parallel.files == 3
    assert {k: (p.count, p.first, p.last) for k, p in parallel.patterns.items()} == {
        k: (p.count, p.first, p.last) for k, p in expected.patterns.items()
    }


def test_profile_formats_dates_and_year_rollover_are_read_as_written(tmp_path: Path) -> None:
    from opslib.logscan import parse_stamp

    assert parse_stamp(b"[23/Nov/2026:14:02:11]", 2026, ("[%d/%b/%Y:%H:%M:%S]",)) == datetime(
        2026, 11, 23, 14, 2, 11
    )
    ahead = datetime.now(UTC) + timedelta(days=60)  # a syslog line "from the future" is last year's
    stamp = parse_stamp(ahead.strftime("%b %d %H:%M:%S").encode(), datetime.now(UTC).year)
    assert stamp is not None and stamp < datetime.now(UTC).replace(tzinfo=None)


def test_day_first_stamps_are_windowed_line_by_line(tmp_path: Path) -> None:
    """23/11 sorts before 30/10 as bytes: such a block must not be judged by its min/max."""
    now = datetime.now(UTC)
    log = tmp_path / "app.log"
    log.write_text(
        f"{now - timedelta(days=40):%d/%m/%Y %H:%M:%S} ERROR old\n{now:%d/%m/%Y %H:%M:%S} ERROR new one\n"
    )
    scanner = Scanner(now - timedelta(hours=1), formats=("%d/%m/%Y %H:%M:%S",))
    scanner.read(log)
    assert list(scanner.triage.patterns) == ["new one"]


def test_a_cut_off_archive_is_named_and_the_rest_still_counted(tmp_path: Path) -> None:
    whole = gzip.compress("".join(_line(n) for n in range(500)).encode())
    (tmp_path / "old.log.gz").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "app.log").write_text(_line(1))
    scanner = Scanner(None)
    for path in (tmp_path / "old.log.gz", tmp_path / "app.log"):
        scanner.read(path)
    found = scanner.triage
    assert found.unreadable and found.unreadable[0].startswith("old.log.gz: ")
    assert found.errors >= 1
