"""The archive as the command line prints it: past runs (`opslib history`) and one run's
checks (`opslib show`), one line each, read from the ledger's rows."""

from __future__ import annotations

from typing import Any


def history_lines(rows: list[dict[str, Any]], filtered: bool) -> list[str]:
    """One line per run, newest first; saying so when nothing was (or nothing matches)."""
    if not rows:
        return ["no runs recorded" + (" that match" if filtered else "")]
    return [
        f"{row['started_at']:%Y-%m-%d %H:%M:%S}  {row['run_id']}  {row['status']:<8} "
        f"{row['runbook']:<24} {row['profile']:<10} {row['duration_s']:6.1f} s  "
        f"{row['html_path'] or '-'}"
        for row in rows
    ]


def run_lines(run: dict[str, Any], results: list[dict[str, Any]]) -> list[str]:
    """A run's facts (status, who, when, where, its report), then one line per check."""
    by = f" ({run['run_by']})" if run["run_by"] else ""
    lines = [
        f"{run['status']} {run['runbook']} on {run['profile']}: {run['summary']}",
        f"run {run['run_id']}, started {run['started_at']:%Y-%m-%d %H:%M:%S} UTC, "
        f"{run['duration_s']:.1f} s, by {run['os_user']}{by} on {run['host']}, "
        f"git {run['git_sha'] or '-'}",
        f"report: {run['html_path'] or '-'}",
    ]
    width = max([len(result["name"]) for result in results] + [5])
    for result in results:
        value = "" if result["value"] is None else f"{result['value']:.4g} {result['unit'] or ''}"
        lines.append(
            f"  {result['status']:<8} {result['name']:<{width}}  {value:<14} {result['summary']}"
        )
    return lines
