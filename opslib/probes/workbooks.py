"""A pipeline of spreadsheet files, its inputs: are they readable workbooks with the
sheets and columns the mapping needs, named by the convention, not open in Excel, is
every client mapped, is any too large to process whole, is the API key set (the outputs
are `workbook_outputs`).

Workbooks are opened with openpyxl in read-only mode (the XML is streamed, not loaded);
what an input holds is read once per run and reused while the file is unchanged. One
broken workbook is named in its row while every other one is still checked.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path

import humanfriendly
import pandas as pd
from openpyxl import load_workbook
from tqdm import tqdm

from opslib.probes import Metric, NotApplicable, ProbeError
from opslib.probes.files import json_schema, matched, read_json
from opslib.profiles import Profile
from opslib.status import Status

LOCK_PREFIX = "~$"  # Office's owner file beside a workbook someone has open


@dataclass
class Contents:
    """What one workbook holds, as far as the checks need it."""

    path: Path
    sheets: list[str] = field(default_factory=list)
    rows: int | None = None  # data rows (header excluded) in the profile's sheets
    clients: set[str] = field(default_factory=set)
    problem: str = ""


def _unreadable(exc: Exception) -> str:
    return f"unreadable: {type(exc).__name__}: {exc}".splitlines()[0][:300]


def _scan_sheet(
    sheet, client_column: str | None
) -> tuple[list[str], int, set[str]]:  # sheet: openpyxl's ReadOnlyWorksheet
    """The header row, the count of non-empty data rows, and the client column's values."""
    rows = sheet.iter_rows(values_only=True)
    header = [str(cell).strip() if cell is not None else "" for cell in next(rows, ())]
    client_at = header.index(client_column) if client_column in header else None
    count, clients = 0, set()
    for row in rows:
        if not any(cell is not None for cell in row):
            continue  # a formatted but empty row
        count += 1
        if client_at is not None and client_at < len(row) and row[client_at] is not None:
            clients.add(str(row[client_at]).strip())
    return header, count, clients


def read_workbook(
    path: Path, required: dict[str, list[str]], client_column: str | None
) -> Contents:
    """Open `path` read-only: its sheets, the data rows of the `required` sheets (each must
    exist and hold its columns), and the client names; a problem is a reason, not a raise."""
    contents = Contents(path)
    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 - zip, zlib, XML or openpyxl: the file is bad
        contents.problem = _unreadable(exc)
        return contents
    try:
        contents.sheets = list(book.sheetnames)
        wanted = required or {contents.sheets[0]: []}
        problems, rows = [], 0
        for name, columns in wanted.items():
            if name not in book.sheetnames:
                problems.append(f"no sheet {name!r}")
                continue
            header, count, clients = _scan_sheet(book[name], client_column)
            missing = [column for column in columns if column not in header]
            if missing:
                problems.append(f"sheet {name!r} lacks column(s) {', '.join(missing)}")
            rows += count
            contents.clients |= clients
        contents.rows = rows
        contents.problem = "; ".join(problems)
    except Exception as exc:  # noqa: BLE001 - damaged inside (a sheet's XML, its compression)
        contents.problem = _unreadable(exc)
    finally:
        book.close()
    return contents


# what each workbook holds, by (path, size, mtime, what was asked): one run reads each
# input and output once, however many checks and plans look at it
_read: dict[tuple, Contents] = {}


def cached_workbook(
    path: Path, required: dict[str, list[str]], client_column: str | None
) -> Contents:
    """`read_workbook`, read again only when the file changed."""
    status = path.stat()
    key = (str(path), status.st_size, status.st_mtime_ns, repr(required), client_column)
    if key not in _read:
        if len(_read) > 10_000:  # a long interactive session: forget, never grow without bound
            _read.clear()
        _read[key] = read_workbook(path, required, client_column)
    return _read[key]


def input_files(profile: Profile) -> tuple[list[Path], list[Path]]:
    """(workbooks, Office lock files) of the input set, oldest first."""
    found = matched(profile, profile.workbooks.inputs)
    locks = [path for path in found if path.name.startswith(LOCK_PREFIX)]
    return [path for path in found if path not in locks], locks


def input_folder(profile: Profile) -> Path:
    """The folder the input glob starts from (its longest part without a wildcard)."""
    folder = Path(profile.file_glob(profile.workbooks.inputs)).parent
    while any(char in folder.name for char in "*?["):
        folder = folder.parent
    return folder


def read_inputs(profile: Profile) -> list[Contents]:
    """Every input workbook's contents, with a progress bar on a large batch."""
    workbooks, _locks = input_files(profile)
    if not workbooks:
        raise ProbeError(
            f"no input workbook matches {profile.file_glob(profile.workbooks.inputs)}",
            Status.CRITICAL,
        )
    progress = tqdm(
        workbooks, desc="workbooks", unit="file", leave=False, disable=len(workbooks) < 20
    )
    settings = profile.workbooks
    return [cached_workbook(path, settings.sheets, settings.client_column) for path in progress]


def _megabytes(path: Path) -> float:
    return round(path.stat().st_size / 1e6, 2)


def folders(profile: Profile) -> Metric:
    """The input folder is readable and the output folder exists and is writable."""
    inputs = input_folder(profile)
    output = profile.output_folder()
    problems = []
    if not os.access(inputs, os.R_OK | os.X_OK):
        problems.append(f"input folder {inputs} is missing or not readable")
    if not output.is_dir():
        problems.append(f"output folder {output} does not exist")
    elif not os.access(output, os.W_OK | os.X_OK):
        problems.append(f"output folder {output} is not writable")
    if problems:
        return Metric(len(problems), "; ".join(problems))
    return Metric(0, f"input folder {inputs} readable, output folder {output} writable")


def inputs(profile: Profile) -> Metric:
    """Input workbooks that cannot be read or lack a sheet or column the mapping needs."""
    found = read_inputs(profile)
    table = pd.DataFrame(
        [
            {"file": c.path.name, "size_mb": _megabytes(c.path), "sheets": ", ".join(c.sheets),
             "rows": c.rows, "clients": ", ".join(sorted(c.clients)), "problem": c.problem}
            for c in found
        ]
    ).set_index("file")  # fmt: skip
    bad = [c for c in found if c.problem]
    if not bad:
        return Metric(0, f"{len(found)} input workbook(s) readable with the expected sheets", table)
    named = "; ".join(f"{c.path.name}: {c.problem}" for c in bad[:3])
    more = f" (and {len(bad) - 3} more)" if len(bad) > 3 else ""
    return Metric(len(bad), f"{len(bad)} of {len(found)} input(s) unusable: {named}{more}", table)


def _lock_owner(path: Path) -> str:
    """The user Office wrote into its owner file (a length byte, then the name)."""
    try:
        raw = path.read_bytes()[:64]
    except OSError:
        return ""
    return raw[1 : 1 + raw[0]].decode("latin-1", "replace").strip() if raw else ""


def _large(profile: Profile, workbooks: list[Path]) -> list[dict]:
    """Inputs past `workbooks.large_input` (the manual's 100 MB): to be processed platform
    by platform, with more memory, and watched."""
    limit = profile.workbooks.large_input
    shown = humanfriendly.format_size(limit)
    return [
        {"file": path.name,
         "problem": f"{_megabytes(path):g} MB, over {shown}: process it platform by platform "
                    "(the large-file procedure) and watch its memory"}
        for path in workbooks
        if path.stat().st_size > limit
    ]  # fmt: skip


def conventions(profile: Profile) -> Metric:
    """Inputs named against the profile's convention, Office lock files (a workbook
    someone still has open in Excel may be half-saved), and inputs too large to process
    whole (over `workbooks.large_input`)."""
    workbooks, locks = input_files(profile)
    pattern = profile.workbooks.name_pattern
    rows = [
        {"file": path.name, "problem": f"name does not follow {pattern}"}
        for path in workbooks
        if pattern and not re.search(pattern, path.name)
    ]
    rows += _large(profile, workbooks)
    for lock in locks:
        owner = _lock_owner(lock)
        opened = lock.name.removeprefix(LOCK_PREFIX)
        rows.append(
            {
                "file": lock.name,
                "problem": f"{opened} is open in Excel" + (f" by {owner}" if owner else ""),
            }
        )
    if not rows:
        return Metric(
            0,
            f"{len(workbooks)} input(s) follow the naming convention; no lock file, none too large",
        )
    table = pd.DataFrame(rows).set_index("file")
    return Metric(len(rows), "; ".join(f"{r['file']}: {r['problem']}" for r in rows[:3]), table)


def _mapped_clients(profile: Profile) -> set[str]:
    name = profile.workbooks.mapping
    files = matched(profile, name)
    if not files:
        raise ProbeError(
            f"no mapping rules file matches {profile.file_glob(name)}", Status.CRITICAL
        )
    document, problem = read_json(files[-1], json_schema(profile, name))
    if problem:
        raise ProbeError(f"{files[-1].name}: {problem}", Status.CRITICAL)
    if not isinstance(document, dict):
        raise ProbeError(
            f"{files[-1].name}: the rules are not an object of clients", Status.CRITICAL
        )
    return {client.casefold() for client in document}


def mapping_coverage(profile: Profile) -> Metric:
    """Clients found in the inputs that the mapping rules do not cover: their rows would
    be dropped or mapped to nothing."""
    if profile.workbooks.mapping is None or profile.workbooks.client_column is None:
        raise ProbeError("the profile names no mapping rules file set or client column")
    mapped = _mapped_clients(profile)
    seen: dict[str, list[str]] = {}
    for contents in read_inputs(profile):
        for client in contents.clients:
            seen.setdefault(client, []).append(contents.path.name)
    unmapped = {client: files for client, files in seen.items() if client.casefold() not in mapped}
    if not unmapped:
        return Metric(0, f"all {len(seen)} client(s) in the inputs have mapping rules")
    table = pd.DataFrame(
        [
            {"client": client, "files": ", ".join(files)}
            for client, files in sorted(unmapped.items())
        ]
    ).set_index("client")
    names = ", ".join(sorted(unmapped))
    return Metric(len(unmapped), f"no mapping rule for client(s) {names}", table)


def api_key(profile: Profile) -> Metric:
    """Whether the API key the mapping needs is set (its value is never read out)."""
    raw = profile.workbooks.api_key
    if raw is None:
        return Metric(0, "the profile needs no API key", verdict=Status.OK)
    if profile.expand(raw, "workbooks.api_key"):
        return Metric(0, "the API key is set")
    return Metric(1, "the API key is not set (workbooks.api_key resolves to nothing)")


def _reach_rows(sheet, names: str, values: str) -> tuple[int, int, str]:
    """(rows, rows lacking a metric name or a reach above zero, a problem) of one sheet."""
    rows = sheet.iter_rows(values_only=True)
    header = [str(cell).strip() if cell is not None else "" for cell in next(rows, ())]
    missing = [column for column in (names, values) if column not in header]
    if missing:
        return 0, 0, f"lacks column(s) {', '.join(missing)}"
    name_at, value_at = header.index(names), header.index(values)
    count = lacking = 0
    for row in rows:
        if not any(cell is not None for cell in row):
            continue
        count += 1
        name = row[name_at] if name_at < len(row) else None
        value = row[value_at] if value_at < len(row) else None
        if (
            name is None
            or not str(name).strip()
            or not isinstance(value, int | float)
            or value <= 0
        ):
            lacking += 1
    return count, lacking, ""


def reach_data(profile: Profile) -> Metric:
    """The manual's "R&F data missing": each readable input's reach and frequency sheets
    (`workbooks.reach_sheets`), each row with its metric name and a reach above zero; the
    value is the count of inputs with no such sheet or with rows lacking either."""
    settings = profile.workbooks
    if settings.reach_sheets is None:
        raise NotApplicable("the profile names no workbooks.reach_sheets")
    workbooks, _locks = input_files(profile)
    rows = []
    for path in workbooks:
        row = {"input": path.name, "sheets": "", "rows": 0, "lacking": 0, "problem": ""}
        try:
            book = load_workbook(path, read_only=True, data_only=True)
        except Exception:  # noqa: BLE001 - named by input_workbooks; not read here
            continue
        try:
            found = [name for name in book.sheetnames if fnmatch(name, settings.reach_sheets)]
            row["sheets"] = ", ".join(found)
            problems = [] if found else [f"no sheet named {settings.reach_sheets}"]
            for name in found:
                count, lacking, problem = _reach_rows(
                    book[name], settings.reach_names, settings.reach_values
                )
                row["rows"] += count
                row["lacking"] += lacking
                problems += [f"{name} {problem}"] if problem else []
            if row["lacking"]:
                problems.append(
                    f"{row['lacking']} of {row['rows']} row(s) with no {settings.reach_names} "
                    f"or no {settings.reach_values} above 0"
                )
            row["problem"] = "; ".join(problems)
        except Exception as exc:  # noqa: BLE001 - damaged inside
            row["problem"] = _unreadable(exc)
        finally:
            book.close()
        rows.append(row)
    if not rows:
        raise ProbeError(f"no readable input workbook in {profile.file_glob(settings.inputs)}")
    table = pd.DataFrame(rows).set_index("input")
    off = table[table["problem"] != ""]
    summary = (
        f"{len(off)} of {len(table)} input(s) with reach and frequency data missing: "
        + "; ".join(f"{name}: {problem}" for name, problem in off["problem"].head(3).items())
        if len(off)
        else f"the reach and frequency sheets of {len(table)} input(s) are complete"
    )
    return Metric(len(off), summary, table)
