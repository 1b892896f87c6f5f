"""Log triage: patterns, timestamps, and incremental scans across rotation and truncation."""

from __future__ import annotations

import gzip
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from opslib.probes.logscan import Offsets, Scanner, normalize


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
    from opslib.probes.logscan import parallel as logscan

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
    from opslib.probes.logscan import parse_stamp

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


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_levels_are_the_first_level_word_after_the_stamp_whatever_the_line_shape(
    tmp_path: Path,
) -> None:
    """The block's first stamp shape is tried first; lines of other shapes, or with the
    level further on, are read as before."""
    now = datetime.now(UTC)
    log = tmp_path / "app.log"
    log.write_text(
        f"{_iso(now)} INFO first line sets the shape\n"
        f"{_iso(now)} host app[3]: ERROR the level comes later\n"
        f"{_iso(now)} no level word on this line\n"
        f"[{now:%Y-%m-%d %H:%M:%S},123] WARN bracketed\n"
        f"{now:%b %d %H:%M:%S} host app: CRITICAL syslog\n"
        "  continuation ERROR without a stamp\n"
        f"{_iso(now)} INFOS is not a level, DEBUG is\n"
    )
    scanner = Scanner(None)
    scanner.read(log)
    assert dict(scanner.triage.levels) == {
        "INFO": 1,
        "ERROR": 1,
        "WARNING": 1,
        "CRITICAL": 1,
        "DEBUG": 1,
    }
    assert set(scanner.triage.patterns) == {"the level comes later", "syslog"}


def test_an_id_inside_a_word_keeps_errors_apart_while_numbers_fold(tmp_path: Path) -> None:
    now = _iso(datetime.now(UTC))
    log = tmp_path / "app.log"
    log.write_text(
        f"{now} ERROR web01 unreachable\n{now} ERROR web02 unreachable\n"
        f"{now} ERROR job 17 failed\n{now} ERROR job 42 failed\n"
        f"{now} ERROR bad pointer 0x7f3a\n{now} ERROR bad pointer 1x7f3a\n"
    )
    scanner = Scanner(None)
    scanner.read(log)
    counts = {key: pattern.count for key, pattern in scanner.triage.patterns.items()}
    assert counts == {
        "web01 unreachable": 1,
        "web02 unreachable": 1,
        "job <n> failed": 2,
        "bad pointer <hex>": 1,
        "bad pointer 1x7f3a": 1,
    }


def test_an_error_with_no_message_does_not_take_the_next_line_as_its_message(
    tmp_path: Path,
) -> None:
    now = _iso(datetime.now(UTC))
    log = tmp_path / "app.log"
    log.write_text(f"{now} ERROR\nTraceback (most recent call last):\n{now} INFO fine\n")
    scanner = Scanner(None)
    scanner.read(log)
    assert list(scanner.triage.patterns) == [""]
    assert scanner.triage.levels["ERROR"] == 1


def test_two_utc_offsets_in_one_block_are_windowed_line_by_line(tmp_path: Path) -> None:
    """As bytes, 08:00-08:00 sorts between 07:30-08:00 and 08:30-08:00 whatever its zone:
    with two offsets (a change to summer time) the block's extremes are not its first and
    last by bytes, and a line from hours ago must not slip in with them."""
    now = datetime.now(UTC).replace(microsecond=0)
    pacific = timedelta(hours=-8)

    def local(moment: datetime, offset: timedelta, sign: str) -> str:
        return (moment + offset).strftime("%Y-%m-%dT%H:%M:%S") + sign

    log = tmp_path / "app.log"
    log.write_text(
        f"{local(now - timedelta(minutes=30), pacific, '-08:00')} ERROR recent one\n"
        f"{local(now - timedelta(hours=9, minutes=15), timedelta(hours=1), '+01:00')} "
        "ERROR nine hours old\n"
        f"{local(now, pacific, '-08:00')} ERROR recent two\n"
    )
    scanner = Scanner(now - timedelta(hours=1))
    scanner.read(log)
    assert sorted(scanner.triage.patterns) == ["recent one", "recent two"]


def test_undated_lines_follow_their_entry_into_the_next_block(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A traceback cut by a block boundary stays with its entry: inside the window, its
    lines count as rate limiting even where the next block is filtered line by line."""
    from opslib.probes.logscan import reading

    now = datetime.now(UTC)
    old, recent = _iso(now - timedelta(days=2)), _iso(now - timedelta(minutes=5))
    entry = f"{recent} ERROR upstream refused\n" + "  rate limit exceeded, retry\n" * 40
    log = tmp_path / "app.log"
    log.write_text(f"{old} INFO before the window\n" + entry + f"{old} INFO late old line\n")
    monkeypatch.setattr(reading, "BLOCK", 256)  # the traceback spans several blocks
    scanner = Scanner(now - timedelta(hours=1))
    scanner.read(log)
    found = scanner.triage
    assert dict(found.levels) == {"ERROR": 1}
    assert found.rate_limited == 40


def _traceback_log(path: Path, entries: int) -> None:
    now = datetime.now(UTC)
    with path.open("w") as stream:
        for number in range(entries):
            stamp = _iso(now - timedelta(hours=3) + timedelta(seconds=number))
            level = "ERROR" if number % 7 == 0 else "INFO"
            stream.write(f"{stamp} {level} job {number} step {number % 3} done\n")
            if number % 5 == 0:  # a traceback: undated lines, one of them rate limiting
                stream.write('  File "job.py", line 7\n    HTTP 429 from upstream\n')


def test_a_part_of_a_file_starts_at_a_dated_line_never_inside_a_traceback(
    tmp_path: Path,
) -> None:
    from opslib.probes.logscan import line_shapes
    from opslib.probes.logscan.parallel import _dated_line_starts

    log = tmp_path / "app.log"
    _traceback_log(log, 400)
    text = log.read_bytes()
    inside = text.index(b"    HTTP 429") + 3  # a cut in the middle of a traceback line
    starts = _dated_line_starts(log, [inside, inside + 1, 5000], line_shapes())
    assert len(starts) == 2  # the two cuts inside one traceback move to the same line
    for start in starts:
        assert text[start - 1 : start] == b"\n" and line_shapes().dated.match(text, start)
    assert starts[0] == text.index(b"\n2", inside) + 1  # the first dated line after the cut
    assert starts[1] == text.index(b"\n2", 5000 - 1) + 1


def test_scan_in_parts_of_files_finds_what_reading_them_one_by_one_finds(
    tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from opslib.probes.logscan import parallel as logscan

    plain, packed = tmp_path / "app.log", tmp_path / "app.log.1.gz"
    _traceback_log(tmp_path / "older.log", 300)
    packed.write_bytes(gzip.compress((tmp_path / "older.log").read_bytes()))
    (tmp_path / "older.log").unlink()
    _traceback_log(plain, 3000)
    files = [packed, plain]
    monkeypatch.setattr(logscan, "PARALLEL_FROM_BYTES", 0)
    monkeypatch.setattr(logscan, "PART_BYTES", 16 * 1024)  # the plain file in ~10 parts
    assert len(logscan._parts(files, logscan.line_shapes())) > 5
    for since in (None, datetime.now(UTC) - timedelta(hours=2, minutes=30)):
        sequential = Scanner(since, requests=r"\bjob ")
        for path in files:
            sequential.read(path)
        expected, found = sequential.triage, logscan.scan(files, since, requests=r"\bjob ")
        assert (found.files, found.lines, found.requests) == (2, expected.lines, expected.requests)
        assert found.levels == expected.levels and found.rate_limited == expected.rate_limited
        assert found.errors_per_hour == expected.errors_per_hour
        assert {k: (p.count, p.first, p.last) for k, p in found.patterns.items()} == {
            k: (p.count, p.first, p.last) for k, p in expected.patterns.items()
        }
        assert found.rate_limited > 0 and found.errors > 0


def test_a_gzip_file_of_several_members_is_read_whole_and_resumed_inside(tmp_path: Path) -> None:
    """`cat a.gz b.gz > c.gz` is one valid gzip file: both members count, and an incremental
    scan resumes at an offset of the text inside the second one."""
    from opslib.probes.logscan.reading import text_pieces

    first, second = "".join(_line(n) for n in range(50)), "".join(_line(n) for n in range(50, 60))
    packed = tmp_path / "app.log.1.gz"
    packed.write_bytes(gzip.compress(first.encode()) + gzip.compress(second.encode()))
    scanner = Scanner(None)
    assert scanner.read(packed) == len(first) + len(second)
    assert scanner.triage.errors == 60
    assert b"".join(text_pieces(packed, len(first) + 5)) == second.encode()[5:]
