"""Hostile, malformed and misspelt profiles and parameters: each is refused with one line
on stderr and exit 3, quickly, without a traceback, without quoting the file it read,
without running anything it holds, and without touching the archive."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from faults_support import (
    DB_PASSWORD,
    Scenario,
    assert_no_canary,
    assert_within,
    run_opslib,
    statuses,
)
from support import Workspace

from opslib.status import Status

REFUSED = statuses(Status.UNKNOWN)
NO_KERNEL_S = 3  # refused before a kernel starts
WITH_KERNEL_S = 6  # a parameter is checked while the kernel boots, and costs its shutdown
PWNED = "pwned-by-input"
SHADOW = (
    "root:$6$cnryShadowSaltQx$cnryShadowHashKfvbnrtwqplmzx:19700:0:99999:7:::\n"
    "daemon:*:19700:0:99999:7:::\n"
    "alice:$y$j9T$cnryAliceSaltWv$cnryAliceHashPlmqzrt:19700:0:99999:7:::\n"
)


def _bomb(levels: int = 9) -> str:
    """A billion laughs under a key the schema accepts any JSON for: 9^9 leaves."""
    anchors = ['        a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    anchors += [f"        a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 9)}]" for n in range(1, levels)]
    return (
        "name: bomb\ntargets:\n  http:\n    api:\n      url: http://127.0.0.1:9/\n"
        "      expect_json:\n" + "\n".join(anchors) + f"\n        all: *a{levels - 1}\n"
    )


def file_with(text: str, name: str = "profile.yaml") -> Callable[[Path], None]:
    def setup(folder: Path) -> None:
        (folder / name).write_text(text)

    return setup


def binary_file(folder: Path) -> None:
    """An executable where a profile should be, a canary among its bytes."""
    (folder / "profile.yaml").write_bytes(
        b"\x7fELF\x02\x01\x01\0" + os.urandom(512) + b"cnryInTheBinary\n: x\n"
    )


def directory(folder: Path) -> None:
    (folder / "profile.yaml").mkdir()


def fifo(folder: Path) -> None:
    """A named pipe nobody writes to: reading it would block for ever."""
    os.mkfifo(folder / "profile.yaml")


def nothing(_folder: Path) -> None:
    pass


MORNING = ("run", "morning-check")
IN_FOLDER = ("--profile", "{folder}/profile.yaml")
BAD_PORT = "name: badport\ntargets:\n  database:\n    url: ${FAULT_PG_DSN}\n"
TYPO = "name: typo\ntargets:\n  database:\n    url: sqlite:///x.db\n    connect_timout: 2 s\n"
SOON = "name: soon\ntargets:\n  database:\n    url: sqlite:///x.db\n    connect_timeout: soon\n"
PYTHON_TAG = f"name: py\ntargets: !!python/object/apply:os.system ['touch {PWNED}']\n"
DEEP = "name: deep\ntargets: " + "[" * 20000 + "]" * 20000 + "\n"

SCENARIOS = [
    Scenario("profile-shadow-file", "--profile names a shadow file holding hashes",
             file_with(SHADOW, "shadow"), (*MORNING, "--profile", "{folder}/shadow"),
             REFUSED, NO_KERNEL_S),
    Scenario("profile-shadow-yaml", "the same, named .yaml", file_with(SHADOW),
             (*MORNING, *IN_FOLDER), REFUSED, NO_KERNEL_S),
    Scenario("profile-binary-file", "an executable named profile.yaml", binary_file,
             (*MORNING, *IN_FOLDER), REFUSED, NO_KERNEL_S),
    Scenario("profile-directory", "a directory named profile.yaml", directory,
             (*MORNING, *IN_FOLDER), REFUSED, NO_KERNEL_S),
    Scenario("profile-fifo", "a named pipe nobody writes to", fifo, (*MORNING, *IN_FOLDER),
             REFUSED, NO_KERNEL_S),
    Scenario("profile-dev-zero", "--profile /dev/zero", nothing,
             (*MORNING, "--profile", "/dev/zero"), REFUSED, NO_KERNEL_S),
    Scenario("profile-yaml-bomb", "a billion laughs (9^9 aliases) in expect_json",
             file_with(_bomb()), (*MORNING, *IN_FOLDER), REFUSED, NO_KERNEL_S),
    Scenario("profile-python-tag", "!!python/object/apply:os.system", file_with(PYTHON_TAG),
             (*MORNING, *IN_FOLDER), REFUSED, NO_KERNEL_S),
    Scenario("profile-deep-nesting", "20,000 nested lists", file_with(DEEP),
             (*MORNING, *IN_FOLDER), REFUSED, NO_KERNEL_S),
    Scenario("profile-misspelt-nested-key", "targets.database.connect_timout", file_with(TYPO),
             (*MORNING, *IN_FOLDER), REFUSED, NO_KERNEL_S),
    Scenario("profile-wrong-type", "connect_timeout: soon", file_with(SOON),
             (*MORNING, *IN_FOLDER), REFUSED, NO_KERNEL_S),
    Scenario("profile-dsn-bad-port", "a DSN with port 54x2 and a password", file_with(BAD_PORT),
             (*MORNING, *IN_FOLDER), REFUSED, NO_KERNEL_S),
    Scenario("profile-check-dsn-bad-port", "the same, through profile check",
             file_with(BAD_PORT), ("profile", "check", "{folder}/profile.yaml"), REFUSED,
             NO_KERNEL_S),
    Scenario("param-profile-override", "-p profile=<the shadow file>",
             file_with(SHADOW, "shadow"), (*MORNING, "-p", "profile={folder}/shadow"), REFUSED,
             WITH_KERNEL_S),
    Scenario("param-not-a-number", "-p window_hours=nan", nothing,
             (*MORNING, "-p", "window_hours=nan"), REFUSED, WITH_KERNEL_S),
    Scenario("param-python-expression", "-p window_hours=__import__('os').system(...)", nothing,
             (*MORNING, "-p", f"window_hours=__import__('os').system('touch {PWNED}')"),
             REFUSED, WITH_KERNEL_S),
    Scenario("param-hostile-name", "-p \"x');import os;os.system(...);('=1\"", nothing,
             (*MORNING, "-p", f"x');import os;os.system('touch {PWNED}');('=1"), REFUSED,
             WITH_KERNEL_S),
    Scenario("runbook-path-traversal", "opslib run ../../../etc/passwd", nothing,
             ("run", "../../../etc/passwd"), REFUSED, NO_KERNEL_S),
]  # fmt: skip


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_hostile_input_is_refused_in_one_line(
    scenario: Scenario, workspace: Workspace, tmp_path: Path
) -> None:
    workspace.env["FAULT_PG_DSN"] = f"postgresql://pipeline:{DB_PASSWORD}@127.0.0.1:54x2/pipeline"
    scenario.setup(tmp_path)
    command = [part.replace("{folder}", str(tmp_path)) for part in scenario.command]
    ran = run_opslib(
        workspace.env,
        workspace.root,
        *command,
        kill_after_s=2 * scenario.bound_s,
        memory_limit_bytes=3 * 1024**3,  # a bomb that explodes fails here, not the machine
    )
    assert_within(scenario.name, ran.elapsed_s, scenario.bound_s)
    assert Status(ran.returncode) in scenario.expected, ran.output
    lines = ran.stderr.strip().splitlines()
    assert len(lines) == 1, ran.stderr
    assert "Traceback" not in ran.output and "internal error" not in ran.output, ran.output
    assert "please report" not in ran.output, ran.output
    assert_no_canary(ran.stdout, ran.stderr)
    assert not (workspace.root / PWNED).exists() and not (workspace.home / PWNED).exists()
    assert not workspace.reports.exists(), "refused input must leave the archive untouched"
