"""Log triage on real log formats, counted against an independent count of the same files.

Each format gets a small realistic log, a rotated `.gz` file and the live one, with lines
before and inside a one-hour window, tracebacks where the format has them, and a late line
stamped before the window. What opslib counts (errors, lines or requests, rate-limited
lines), with and without the window, with the format named and with `auto`, must equal
what `grep`/`awk` over `zcat -f` of the files say, or, for the window, a small parser
written here for the format without any of opslib's code.
"""

from __future__ import annotations

import gzip
import json
import re
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from opslib.probes import ProbeError
from opslib.probes import logs as log_probes
from opslib.probes.logscan import Scanner, detect, file_format, normalize, scan
from opslib.profiles import load_profile

NOW = datetime.now(UTC).replace(microsecond=0)
SINCE = NOW - timedelta(hours=1)


@pytest.fixture(autouse=True)
def _clock() -> None:
    """Now, for each test as it starts (not when the module was collected): the probes
    take their window from the clock too."""
    global NOW, SINCE
    NOW = datetime.now(UTC).replace(microsecond=0)
    SINCE = NOW - timedelta(hours=1)


# (minutes ago, level, message): the rotated file, then the live one, in the order written
OLDER = [
    (4320, "error", "payment 4711 failed: upstream returned 502"),
    (4319, "info", "GET /orders 200"),
    (4318, "warning", "close to the rate limit for tenant acme"),
    (150, "error", "rate limit exceeded for tenant acme"),
    (100, "critical", "disk /var/data is 97% full"),
    (58, "info", "job 17 done"),
    (55, "error", "payment 4712 failed: upstream returned 502"),
]
LIVE = [
    (50, "debug", "cache miss for key user:9"),
    (45, "warning", "HTTP 429 from partner api, retry in 30 s"),
    (40, "error", "payment 4713 failed: upstream returned 502"),
    (35, "info", "GET /health 200"),
    (200, "error", "late line from a lagging worker 17"),  # written late, stamped before
    (30, "fatal", "worker-7d9f8c6b5-x2kqz crashed"),
    (20, "info", "GET /orders 200"),
    (10, "error", "payment 4714 failed: upstream returned 502"),
    (5, "warning", "queue 14290 items long"),
]
TRACE = ["Traceback (most recent call last):", '  File "pay.py", line 7, in pay', "HTTP 429"]
STACK = ["\tat com.example.Pay.run(Pay.java:42)", "Caused by: java.io.IOException: HTTP 429"]


def _at(minutes: int) -> datetime:
    return NOW - timedelta(minutes=minutes)


def _iso(moment: datetime, sep: str = "T") -> str:
    return moment.strftime(f"%Y-%m-%d{sep}%H:%M:%S")


# --- writing each format, as its logger would -------------------------------------------

PLAIN_WORDS = {"warning": "WARN", "fatal": "FATAL"}
MIXED_WORDS = {"error": ["error", "Error", "ERROR", "err"], "warning": ["warn", "Warning"],
               "critical": ["crit"], "fatal": ["fatal"], "info": ["info", "Info"],
               "debug": ["debug"]}  # fmt: skip
PINO = {"debug": 20, "info": 30, "warning": 40, "error": 50, "critical": 60, "fatal": 60}
SYSLOG_WORDS = {"error": "error: ", "warning": "warning: ", "critical": "crit: ",
                "fatal": "emerg: ", "debug": "debug: ", "info": ""}  # fmt: skip
SEVERITY = {"fatal": 0, "critical": 2, "error": 3, "warning": 4, "info": 6, "debug": 7}
STATUS = {"fatal": 500, "critical": 503, "error": 502, "info": 200, "debug": 304}


def _plain(number: int, moment: datetime, level: str, message: str) -> list[str]:
    word = PLAIN_WORDS.get(level, level.upper())
    return [f"{_iso(moment)}Z {word} {message}", *(TRACE if level == "error" else [])]


def _mixed(number: int, moment: datetime, level: str, message: str) -> list[str]:
    words = MIXED_WORDS[level]
    return [f"{_iso(moment)}Z {words[number % len(words)]} {message}"]


def _python(number: int, moment: datetime, level: str, message: str) -> list[str]:
    name = {"warning": "WARNING", "fatal": "CRITICAL"}.get(level, level.upper())
    line = f"{_iso(moment, ' ')},{number * 37 % 1000:03d} {name} payments.api: {message}"
    return [line, *(TRACE if level == "error" else [])]


def _logback(number: int, moment: datetime, level: str, message: str) -> list[str]:
    name = {"warning": "WARN", "critical": "ERROR"}.get(level, level.upper())
    if number % 3 == 2:  # the Elasticsearch layout
        return [f"[{_iso(moment)},{number:03d}][{name:<5}][o.e.PaymentService] [node-1] {message}"]
    line = f"{_iso(moment, ' ')}.{number:03d} {name:<5} [exec-{number}] c.e.Pay - {message}"
    return [line, *(STACK if level == "error" else [])]


def _logfmt(number: int, moment: datetime, level: str, message: str) -> list[str]:
    word = {"warning": "warn", "critical": "crit"}.get(level, level)
    if number % 2:
        return [f'ts={_iso(moment)}.{number:03d}Z lvl={word} msg="{message}" caller=pay.go:42']
    return [f'time="{_iso(moment)}Z" level={word} msg="{message}" component=payments']


def _json(number: int, moment: datetime, level: str, message: str) -> list[str]:
    if number % 2:  # pino: numeric level, epoch milliseconds
        record = {"level": PINO[level], "time": int(moment.timestamp() * 1000), "pid": 7,
                  "hostname": "web01", "msg": message}  # fmt: skip
    else:
        record = {"time": _iso(moment) + "Z", "level": level, "logger": "payments",
                  "message": message}  # fmt: skip
    return [json.dumps(record)]


def _syslog(number: int, moment: datetime, level: str, message: str) -> list[str]:
    stamp = f"{moment:%b} {moment.day:2d} {moment:%H:%M:%S}"
    word = "err: " if level == "error" and number % 2 else SYSLOG_WORDS[level]
    return [f"{stamp} web01 payments[{4000 + number}]: {word}{message}"]


def _syslog5424(number: int, moment: datetime, level: str, message: str) -> list[str]:
    data = '[origin ip="10.0.0.7"]' if number % 3 == 0 else "-"
    pri = 8 + SEVERITY[level]  # facility user
    return [f"<{pri}>1 {_iso(moment)}.{number:03d}Z web01 payments {4000 + number} - {data} "
            f"{message}"]  # fmt: skip


def _access(number: int, moment: datetime, level: str, message: str) -> list[str]:
    status = STATUS.get(level) or (429 if "429" in message or "rate" in message else 404)
    zone = "+0100" if number % 4 == 1 else "+0000"
    local = moment + timedelta(hours=1 if zone == "+0100" else 0)
    return [f'10.0.0.{number} - - [{local:%d/%b/%Y:%H:%M:%S} {zone}] '
            f'"GET /api/orders/{4700 + number}?page=2 HTTP/1.1" {status} {512 + number} '
            f'"-" "curl/8.5.0"']  # fmt: skip


WRITERS: dict[str, Callable[[int, datetime, str, str], list[str]]] = {
    "plain": _plain, "mixed": _mixed, "python": _python, "logback": _logback,
    "logfmt": _logfmt, "json": _json, "syslog": _syslog, "syslog5424": _syslog5424,
    "access": _access,
}  # fmt: skip


def _write(folder: Path, kind: str) -> list[Path]:
    """The rotated (compressed) file and the live one, oldest first."""
    writer, number = WRITERS[kind], 0
    texts = []
    for events in (OLDER, LIVE):
        lines = []
        for minutes, level, message in events:
            lines += writer(number, _at(minutes), level, message)
            number += 1
        texts.append("\n".join(lines) + "\n")
    rotated, live = folder / "app.log.1.gz", folder / "app.log"
    rotated.write_bytes(gzip.compress(texts[0].encode()))
    live.write_text(texts[1])
    return [rotated, live]


# --- the independent counts ---------------------------------------------------------------


def _shell(script: str, files: list[Path]) -> str:
    names = " ".join(str(path) for path in files)
    return subprocess.run(
        ["bash", "-c", f"zcat -f {names} | {script}"], capture_output=True, text=True, check=True
    ).stdout.strip()


def _grep(pattern: str, files: list[Path], flags: str = "-E") -> int:
    return int(_shell(f"grep -c {flags} '{pattern}' || true", files))


RATE = r"rate[ _-]?limit|\b429\b"
ERRORS_ANY_CASE = "(err|error|crit|critical|alert|emerg|emergency|fatal|panic)"

# per format, (errors, lines or requests, rate-limited) over every line, by grep or awk
WHOLE: dict[str, Callable[[list[Path]], tuple[int, int, int]]] = {
    "plain": lambda f: (
        _grep(r"^\S+ (ERROR|CRITICAL|FATAL)\b", f),
        _grep(r"^\S+ (DEBUG|INFO|WARN|WARNING|ERROR|CRITICAL|FATAL)\b", f),
        _grep(RATE, f, "-i -E"),
    ),
    "mixed": lambda f: (
        _grep(rf"^\S+ {ERRORS_ANY_CASE}\b", f, "-i -E"),
        _grep(r"^\S+ [a-zA-Z]+ ", f),
        _grep(RATE, f, "-i -E"),
    ),
    "python": lambda f: (
        _grep(r"^\S+ \S+ (ERROR|CRITICAL) ", f),
        _grep(r"^[0-9-]+ [0-9:,]+ [A-Z]+ ", f),
        _grep(RATE, f, "-i -E"),
    ),
    "logback": lambda f: (
        _grep(r"^(\S+ \S+ |\[\S+\]\[)(ERROR|FATAL)", f),
        _grep(r"^(\S+ \S+ |\[\S+\]\[)[A-Z]+", f),
        _grep(RATE, f, "-i -E"),
    ),
    "logfmt": lambda f: (
        _grep(rf"(^| )(level|lvl)={ERRORS_ANY_CASE}( |$)", f, "-i -E"),
        _grep(r"(^| )(level|lvl)=", f),
        _grep(RATE, f, "-i -E"),
    ),
    "syslog": lambda f: (
        int(_shell(f"awk 'tolower($6) ~ /^{ERRORS_ANY_CASE}:$/ {{n++}} END {{print n+0}}'", f)),
        int(_shell("awk '$5 ~ /:$/ {n++} END {print n+0}'", f)),
        _grep(RATE, f, "-i -E"),
    ),
    "syslog5424": lambda f: (
        int(_shell("awk -F'[<>]' '$2 % 8 <= 3 {n++} END {print n+0}'", f)),
        int(_shell("awk '/^<[0-9]+>1 / {n++} END {print n+0}'", f)),
        _grep(RATE, f, "-i -E"),
    ),
    "access": lambda f: (
        int(_shell("awk '$9 >= 500 {n++} END {print n+0}'", f)),
        int(_shell("awk 'END {print NR}'", f)),
        int(_shell("awk '$9 == 429 {n++} END {print n+0}'", f)),
    ),
}


def _json_whole(files: list[Path]) -> tuple[int, int, int]:
    records = [json.loads(line) for line in _shell("cat", files).splitlines()]
    errors = sum(
        record["level"] >= 50 if isinstance(record["level"], int)
        else record["level"] in ("error", "critical", "fatal")
        for record in records
    )  # fmt: skip
    return errors, len(records), _grep(RATE, files, "-i -E")


WHOLE["json"] = _json_whole


def _syslog_time(text: str) -> datetime:
    month, day, clock = text.split()
    moment = datetime.strptime(f"{NOW.year} {month} {day} {clock}", "%Y %b %d %H:%M:%S")
    moment = moment.replace(tzinfo=UTC)
    return moment.replace(year=NOW.year - 1) if moment > NOW + timedelta(days=1) else moment


def _read_json(line: str) -> tuple[datetime, bool]:
    record = json.loads(line)
    if isinstance(record["time"], int):
        return datetime.fromtimestamp(record["time"] / 1000, UTC), record["level"] >= 50
    return datetime.fromisoformat(record["time"]), record["level"] in ("error", "critical", "fatal")


# per format: a line's (time, is an error), or None for a line that is no entry
READERS: dict[str, Callable[[str], tuple[datetime, bool] | None]] = {
    "plain": lambda line: (
        (datetime.strptime(line[:20], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC),
         line.split()[1] in ("ERROR", "FATAL", "CRITICAL"))
        if line[:1].isdigit() else None
    ),
    "mixed": lambda line: (
        datetime.strptime(line[:20], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC),
        line.split()[1].lower() in ("error", "err", "crit", "fatal"),
    ),
    "python": lambda line: (
        (datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").replace(tzinfo=UTC),
         line.split()[2] in ("ERROR", "CRITICAL"))
        if line[:1].isdigit() else None
    ),
    "logback": lambda line: (
        (datetime.fromisoformat(line[1:24].replace(",", ".")).replace(tzinfo=UTC),
         "[ERROR" in line[:32] or "[FATAL" in line[:32]) if line.startswith("[")
        else (datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC),
              line.split()[2] in ("ERROR", "FATAL")) if line[:1].isdigit() else None
    ),
    "logfmt": lambda line: (
        datetime.fromisoformat(re.search(r"(?:time|ts)=\"?([^\s\"]+)", line)[1]),
        re.search(r"(?:level|lvl)=(\w+)", line)[1] in ("error", "crit", "fatal"),
    ),
    "json": _read_json,
    "syslog": lambda line: (
        _syslog_time(line[:15]),
        line.split()[5].rstrip(":") in ("error", "err", "crit", "emerg"),
    ),
    "syslog5424": lambda line: (
        datetime.fromisoformat(line.split()[1]),
        int(line[1 : line.index(">")]) % 8 <= 3,
    ),
    "access": lambda line: (
        datetime.strptime(line.split("[")[1].split("]")[0], "%d/%b/%Y:%H:%M:%S %z"),
        int(line.split('"')[2].split()[0]) >= 500,
    ),
}  # fmt: skip


def _windowed(kind: str, files: list[Path]) -> tuple[int, int, int]:
    """(errors, lines or requests, rate-limited) in the window: an entry by its own time,
    a line that is no entry with the entry above it."""
    reader, errors, lines, limited, keep = READERS[kind], 0, 0, 0, False
    for line in _shell("cat", files).splitlines():
        entry = reader(line)
        if entry is not None:
            keep = entry[0] >= SINCE
            lines += keep
            errors += keep and entry[1]
        if not keep:
            continue
        if kind == "access":
            limited += int(line.split('"')[2].split()[0]) == 429
        else:
            limited += re.search(RATE, line, re.I) is not None
    return errors, lines, limited


def _counted(found) -> tuple[int, int, int]:  # type: ignore[no-untyped-def]
    return found.errors, found.requests or found.lines, found.rate_limited


# `auto` on these files: Python and logback logs with capital levels read as plain does
DETECTED = {"plain": "plain", "mixed": "logback", "python": "plain", "logback": "plain",
            "logfmt": "logfmt", "json": "json", "syslog": "syslog",
            "syslog5424": "syslog5424", "access": "access"}  # fmt: skip
NAMED = {"mixed": "python"}  # the format a profile would name for each (itself otherwise)


@pytest.mark.parametrize("kind", list(WRITERS))
def test_each_format_counts_what_grep_awk_and_a_small_parser_count(
    kind: str, tmp_path: Path
) -> None:
    files = _write(tmp_path, kind)
    whole, windowed = WHOLE[kind](files), _windowed(kind, files)
    assert whole[0] and whole[1] and whole[2]  # the logs have errors and rate limiting
    assert windowed != whole and windowed[0] and windowed[2]
    for log_format in ("auto", NAMED.get(kind, kind)):
        for since, expected in ((None, whole), (SINCE, windowed)):
            scanner = Scanner(since, log_format=log_format)
            for path in files:
                scanner.read(path)
            found = scanner.triage
            assert _counted(found) == expected, (log_format, since)
            assert sum(found.levels.values()) == found.lines
            assert sum(pattern.count for pattern in found.patterns.values()) == found.errors
            assert found.unrecognized == [] and found.undated == 0
        if log_format == "auto":
            assert dict(found.formats) == {DETECTED[kind]: 2}


def test_detection_reads_the_first_lines_of_each_format(tmp_path: Path) -> None:
    samples = {
        "logfmt": 'time=2026-12-03T09:55:00Z level=error msg="db down"',
        "json": '{"time": "2026-12-03T09:55:00Z", "level": "error", "msg": "db down"}',
        "python": "ERROR:root:db down",
        "logback": "2026-12-03 09:55:00,123 [main] error c.e.Db - down",
        "syslog": "Dec  3 09:55:00 web01 app[123]: error: db down",
        "syslog5424": "<11>1 2026-12-03T09:55:00.123Z web01 app 123 ID47 - db down",
        "access": '127.0.0.1 - - [03/Dec/2026:09:55:00 +0000] "GET /x HTTP/1.1" 502 123 "-" "-"',
        "plain": "2026-12-03T09:55:00Z ERROR db down",
    }
    for expected, line in samples.items():
        assert detect([line.encode(), b"  a continuation"]) == expected, line
    assert detect([b"hello world", b"nothing here looks like a log"]) is None
    (tmp_path / "empty.log").write_text("")
    assert file_format(tmp_path / "empty.log") == "plain"  # nothing written yet: no verdict
    (tmp_path / "notes.log").write_text("just some notes\nand more\n")
    assert file_format(tmp_path / "notes.log") is None
    assert file_format(tmp_path / "notes.log", "plain") is None
    (tmp_path / "app.log").write_text(samples["json"] + "\n")
    assert file_format(tmp_path / "app.log", "logfmt") is None  # a level key, but no pairs


def test_a_file_in_no_known_format_is_a_reason_naming_the_format_key(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log").write_text("".join(_json(n, _at(5), "error", "x")[0] + "\n" for n in (0, 2)))
    (logs / "worker.log").write_text("started worker\nworker busy\n")

    def profile(extra: str = ""):  # type: ignore[no-untyped-def]
        path = tmp_path / "p.yaml"
        path.write_text(f"name: p\ntargets:\n  logs:\n    paths: ['{logs}/*.log']\n{extra}")
        return load_profile(str(path))

    with pytest.raises(ProbeError, match=r"worker\.log.*targets\.logs\.format"):
        log_probes.error_rate(profile())
    with pytest.raises(ProbeError, match=r"app\.log.*'plain' format that targets\.logs\.format"):
        log_probes.error_rate(profile("    format: plain\n"))
    (logs / "worker.log").write_text("")  # just rotated: empty is no error
    metric = log_probes.error_rate(profile())
    assert metric.value == pytest.approx(100.0) and "read as json" in metric.summary


@pytest.mark.parametrize("kind", ["access", "json", "syslog"])
def test_the_probe_rate_is_errors_per_line_or_per_request(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSLIB_DATA_DIR", str(tmp_path / "data"))
    files = _write(tmp_path, kind)
    errors, lines, limited = _windowed(kind, files)
    path = tmp_path / "p.yaml"
    path.write_text(
        f"name: p\ntargets:\n  logs:\n    paths: ['{tmp_path}/app.log*']\n    format: {kind}\n"
    )
    profile = load_profile(str(path))
    metric = log_probes.error_rate(profile, window_hours=1)
    assert metric.value == pytest.approx(100.0 * errors / lines)
    unit = "request(s)" if kind == "access" else "log line(s)"
    assert f"{errors} error(s) in {lines} {unit}" in metric.summary
    assert log_probes.rate_limits(profile, window_hours=1).value == limited
    first = log_probes.new_errors(profile)  # the incremental scan reads every line once
    assert first.value == pytest.approx(100.0 * WHOLE[kind](files)[0] / WHOLE[kind](files)[1])
    assert log_probes.new_errors(profile).summary.startswith("0 error(s) in 0 ")


def test_undated_python_lines_are_counted_and_said_to_be(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text(
        "INFO:root:starting\nERROR:payments:charge 17 failed\nTraceback (most recent call last):\n"
        '  File "pay.py", line 7\nRuntimeError: HTTP 429\nWARNING:root:retrying\n'
    )
    assert file_format(log) == "python"
    scanner = Scanner(SINCE.replace(tzinfo=None))
    scanner.read(log)
    found = scanner.triage
    assert dict(found.levels) == {"INFO": 1, "ERROR": 1, "WARNING": 1}
    assert found.rate_limited == 1 and found.undated == 3
    assert list(found.patterns) == ["payments:charge <n> failed"]


def test_three_messages_with_different_ids_are_three_patterns(tmp_path: Path) -> None:
    ids = [
        ("7d9f8c6b5-x2kqz", "01HF8Z6Q3M9X2V7K4T1R5N8B0C", "3f2c1a9e-1d2b-4c3d-9e8f-0a1b2c3d4e5f"),
        ("5c8f7b9d4-b7kqz", "01HF8Z7A0B1C2D3E4F5G6H7J8K", "9a1b2c3d-4e5f-4a6b-8c7d-1e2f3a4b5c6d"),
        ("64d9c7f5b-r4w9p", "01HF8Z9YZXWVTSRQPNMKJHGFED", "0fedcba9-8765-4321-8fed-cba987654321"),
        ("9b6c5d4f8-9zxlm", "01HF8ZB2C3D4E5F6G7H8J9K0MN", "11111111-2222-4333-8444-555555555555"),
        ("7f6b5d4c3-q8mnb", "01HF8ZC5D6E7F8G9H0J1K2M3N4", "abcdefab-cdef-4abc-8def-abcdefabcdef"),
    ]
    lines = []
    for number, (pod, ulid, uuid) in enumerate(ids):
        stamp = _iso(_at(number))
        lines += [
            f"{stamp}Z ERROR pod worker-{pod} crashed (trace {number:x}a3f9c2{number})",
            f"{stamp}Z ERROR job {ulid} failed on shard 0x{number + 10:x}",
            f"{stamp}Z ERROR request {uuid} timed out after {number * 7 + 3} s",
        ]
    lines.append(f"{_iso(_at(1))}Z ERROR pod fluentd-x2kqz crashed (trace 9f8e7d6c5b)")
    log = tmp_path / "app.log"
    log.write_text("\n".join(lines) + "\n")
    scanner = Scanner(None)
    scanner.read(log)
    counts = {key: pattern.count for key, pattern in scanner.triage.patterns.items()}
    assert counts == {
        "pod worker-<pod> crashed (trace <hex>)": 5,
        "job <ulid> failed on shard <hex>": 5,
        "request <uuid> timed out after <n> s": 5,
        "pod fluentd-<pod> crashed (trace <hex>)": 1,
    }
    assert (
        normalize("proxy-https refused, order-12345 late") == "proxy-https refused, order-<n> late"
    )


def test_access_errors_are_patterns_of_status_method_and_route(tmp_path: Path) -> None:
    files = _write(tmp_path, "access")
    scanner = Scanner(None)
    for path in files:
        scanner.read(path)
    counts = {key: pattern.count for key, pattern in scanner.triage.patterns.items()}
    assert counts == {
        "502 GET /api/orders/<n>": 6,
        "503 GET /api/orders/<n>": 1,
        "500 GET /api/orders/<n>": 1,
    }


@pytest.mark.parametrize("kind", ["json", "access", "python"])
def test_parts_of_files_in_line_formats_add_up_to_the_whole(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opslib.probes.logscan import parallel

    folder = tmp_path / "big"
    folder.mkdir()
    files = _write(folder, kind)
    text = files[1].read_text()
    files[1].write_text(text * 400)  # a live file of ~8 parts
    monkeypatch.setattr(parallel, "PARALLEL_FROM_BYTES", 0)
    monkeypatch.setattr(parallel, "PART_BYTES", len(text) * 50)
    log_format = "python" if kind == "python" else "auto"
    kinds = {path: file_format(path, log_format) for path in files}
    parts = parallel._parts(files, parallel.line_shapes(), kinds)  # type: ignore[arg-type]
    assert len(parts) > 5 and {part.kind for part in parts} == {kind}
    for part in parts[2:]:  # each part of the live file starts at an entry
        with files[1].open("rb") as stream:
            stream.seek(part.start - 1)
            head = stream.read(300)
        assert head[:1] == b"\n" and head[1:2] not in (b" ", b"T")  # not in a traceback
    for since in (None, SINCE):
        sequential = Scanner(since, log_format=log_format)
        for path in files:
            sequential.read(path)
        expected, found = sequential.triage, scan(files, since, log_format=log_format)
        assert _counted(found) == _counted(expected) and found.levels == expected.levels
        assert found.formats == expected.formats and found.files == 2
        assert {k: p.count for k, p in found.patterns.items()} == {
            k: p.count for k, p in expected.patterns.items()
        }


def test_undated_entries_are_named_in_the_probe_summary(tmp_path: Path) -> None:
    (tmp_path / "app.log").write_text("INFO:root:starting\nERROR:root:charge 17 failed\n")
    path = tmp_path / "p.yaml"
    path.write_text(f"name: p\ntargets:\n  logs:\n    paths: ['{tmp_path}/app.log']\n")
    metric = log_probes.error_rate(load_profile(str(path)), window_hours=1)
    assert metric.value == pytest.approx(50.0)
    assert "read as python (1 file(s))" in metric.summary
    assert "2 line(s) with no time of their own counted as in the window" in metric.summary


def test_docker_json_file_lines_are_read_as_the_app_wrote_them(tmp_path: Path) -> None:
    lines = [
        ("2026-12-03T09:55:00Z ERROR payment 17 failed", "stderr"),
        ("2026-12-03T09:55:01Z INFO GET /health 200", "stdout"),
        ("error: payment 18 failed", "stderr"),
        ("listening on :8080", "stdout"),
    ]
    log = tmp_path / "0123abcd-json.log"
    log.write_text("".join(
        json.dumps({"log": text + "\n", "stream": stream, "time": "2026-12-03T09:55:02.5Z"})
        + "\n" for text, stream in lines
    ))  # fmt: skip
    assert file_format(log) == "json"
    scanner = Scanner(None)
    scanner.read(log)
    found = scanner.triage
    assert found.errors == 2 == _grep(r'"log": "([0-9TZ:-]+ ERROR|error:)', [log])
    assert dict(found.levels) == {"ERROR": 2, "INFO": 1, "(none)": 1}
    assert list(found.patterns) == ["payment <n> failed"]


def test_syslog_levels_come_from_the_pri_or_where_the_message_says_them(tmp_path: Path) -> None:
    log = tmp_path / "syslog"
    log.write_text(
        "<11>Dec  3 09:55:00 web01 app[1]: no level word, PRI 11 is err\n"
        "<14>Dec  3 09:55:01 web01 app[1]: ERROR in the text, PRI 14 is info\n"
        "Dec  3 09:55:02 web01 sshd[9]: error: PAM: authentication failure\n"
        "Dec  3 09:55:03 web01 app[1]: request done level=error status=500\n"
        "Dec  3 09:55:04 web01 app[1]: retried after an error upstream\n"
        "Dec  3 09:55:05 web01 kernel: [1234.5] EXT4-fs CRITICAL: journal aborted\n"
        "Dec  3 09:55:06 web01 app[1]: <alert> disk failing\n"
        "Dec  3 09:55:07 web01 CRON[7]: (root) CMD (run-parts /etc/cron.hourly)\n"
    )
    scanner = Scanner(None, log_format="syslog")
    scanner.read(log)
    assert dict(scanner.triage.levels) == {
        "ERROR": 3, "INFO": 1, "(none)": 2, "CRITICAL": 1, "ALERT": 1
    }  # fmt: skip
    assert scanner.triage.errors == 5 and scanner.triage.lines == 8


def test_plain_named_keeps_capital_levels_only(tmp_path: Path) -> None:
    """`format: plain` is the scanner as it was: a lower-case level is no level there,
    while `auto` reads the same file as logback, in any case."""
    log = tmp_path / "app.log"
    log.write_text("".join(f"{_iso(_at(n))}Z {w} step {n}\n" for n, w in enumerate(
        ["ERROR", "error", "Warning", "INFO", "info"]
    )))  # fmt: skip
    for log_format, expected in (("plain", {"ERROR": 1, "INFO": 1}),
                                 ("auto", {"ERROR": 2, "WARNING": 1, "INFO": 2})):  # fmt: skip
        scanner = Scanner(None, log_format=log_format)
        scanner.read(log)
        assert dict(scanner.triage.levels) == expected


def test_stamps_compared_as_bytes_decide_the_window_exactly(tmp_path: Path) -> None:
    """Line formats compare ISO stamps of one shape as bytes once one on each side of the
    window's start is known: out of order, a millisecond either side, it is still exact."""
    import random

    rng = random.Random(7)
    since = SINCE.replace(tzinfo=None)
    moments = [since + timedelta(milliseconds=rng.randrange(-3000, 3000)) for _ in range(3000)]
    log = tmp_path / "app.log"
    log.write_text("".join(
        json.dumps({"ts": f"{m:%Y-%m-%dT%H:%M:%S}.{m.microsecond // 1000:03d}Z",
                    "level": "error" if n % 3 else "info", "msg": f"item {n}"}) + "\n"
        for n, m in enumerate(moments)
    ))  # fmt: skip
    scanner = Scanner(since)
    scanner.read(log)
    inside = [n for n, m in enumerate(moments) if m >= since]
    assert scanner.triage.lines == len(inside)
    assert scanner.triage.errors == sum(1 for n in inside if n % 3)
