"""Bad input gets one clear line on stderr, exit 3, no traceback and nothing archived."""

from __future__ import annotations

import pytest
from support import Workspace


def assert_one_line_refusal(result, *fragments: str) -> None:  # type: ignore[no-untyped-def]
    """Exit 3, one line on stderr naming the fragments, no traceback."""
    assert result.returncode == 3, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_unknown_runbook_names_it_and_the_closest(workspace: Workspace) -> None:
    result = workspace.opslib("run", "morning-chek")
    assert_one_line_refusal(result, "'morning-chek'", "morning-check")
    assert not workspace.reports.exists(), "bad input must leave the archive untouched"


def test_unknown_parameter_names_it_and_the_valid_ones(workspace: Workspace) -> None:
    result = workspace.opslib("run", "morning-check", "-p", "nosuch=1")
    assert_one_line_refusal(result, "'nosuch'", "window_hours")
    assert not workspace.reports.exists(), "bad input must leave the archive untouched"


def test_parameter_of_the_wrong_type_is_refused(workspace: Workspace) -> None:
    result = workspace.opslib("run", "morning-check", "-p", "window_hours=yesterday")
    assert_one_line_refusal(result, "window_hours", "number")
    assert not workspace.reports.exists(), "bad input must leave the archive untouched"


@pytest.mark.parametrize(
    ("runbook", "parameter"),
    [("high-error-rate", "window_hours=-5"), ("high-error-rate", "window_hours=0"),
     ("high-error-rate", "top=0"), ("database-locks", "idle_after_s=-1")],
)  # fmt: skip
def test_a_window_or_count_that_holds_nothing_is_refused(
    workspace: Workspace, runbook: str, parameter: str
) -> None:
    """A window of 0 or -5 hours finds nothing, and nothing found once read as OK."""
    result = workspace.opslib("run", runbook, "-p", parameter)
    assert_one_line_refusal(result, parameter.partition("=")[0], "must be more than 0")
    assert not workspace.reports.exists()


def test_misspelt_profile_key_names_file_and_key(workspace: Workspace) -> None:
    profile = workspace.root / "typo.yaml"
    profile.write_text("name: typo\ntargets:\n  databse:\n    url: sqlite:///x.db\n")
    result = workspace.opslib("run", "morning-check", "--profile", str(profile))
    assert_one_line_refusal(result, str(profile), "targets.databse")
    assert not workspace.reports.exists(), "bad input must leave the archive untouched"


@pytest.mark.parametrize("profile", ["no-such-profile", "/nonexistent/profile.yaml"])
def test_profile_that_does_not_exist_is_refused(workspace: Workspace, profile: str) -> None:
    result = workspace.opslib("run", "morning-check", "--profile", profile)
    assert_one_line_refusal(result, profile)
    assert not workspace.reports.exists(), "bad input must leave the archive untouched"


def test_missing_environment_variable_is_named(workspace: Workspace) -> None:
    profile = workspace.root / "env.yaml"
    profile.write_text("name: env\ntargets:\n  database:\n    url: ${OPSLIB_NOT_SET_ANYWHERE}\n")
    result = workspace.opslib("run", "morning-check", "--profile", str(profile))
    assert_one_line_refusal(result, "targets.database.url", "OPSLIB_NOT_SET_ANYWHERE")


def test_usage_errors_are_one_line_and_exit_3(workspace: Workspace) -> None:
    assert_one_line_refusal(workspace.opslib("frobnicate"), "frobnicate")
    assert_one_line_refusal(workspace.opslib("run"), "runbook")


def test_profile_check_reports_each_target(workspace: Workspace) -> None:
    result = workspace.opslib("profile", "check", "demo")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK       database" in result.stdout and "OK       logs" in result.stdout


def test_profile_check_on_a_dead_target_is_critical(workspace: Workspace) -> None:
    (workspace.data / "demo" / "pipeline.db").unlink()
    result = workspace.opslib("profile", "check", "demo")
    assert result.returncode == 2
    assert "CRITICAL database" in " ".join(result.stdout.split())


def test_profile_check_reports_every_target_kind_even_a_misconfigured_one(
    workspace: Workspace,
) -> None:
    """Redis was once left out of `profile check`; a bad URL is one target's UNKNOWN,
    not an internal error hiding the others."""
    profile = workspace.root / "both.yaml"
    database = workspace.data / "demo" / "pipeline.db"
    profile.write_text(
        f"name: both\ntargets:\n  database:\n    url: sqlite:///{database}\n"
        "  redis:\n    url: localhost:6379\n  disks:\n    data: /tmp\n"
    )
    result = workspace.opslib("profile", "check", str(profile))
    lines = [" ".join(line.split()) for line in result.stdout.splitlines()]
    assert result.returncode == 3 and "internal error" not in result.stderr, result.stderr
    assert lines[0].startswith("OK database") and lines[1].startswith("UNKNOWN redis")
    assert lines[2].startswith("OK disks[data]") and "3 target(s) checked" in lines[3]


def test_list_shows_runbooks_with_purpose_and_parameters(workspace: Workspace) -> None:
    result = workspace.opslib("list")
    assert result.returncode == 0
    assert "morning-check" in result.stdout and "scheduled" in result.stdout
    assert "stuck-pipeline" in result.stdout and "apply=False" in result.stdout


def test_list_for_a_profile_shows_only_the_runbooks_that_apply_to_it(
    workspace: Workspace,
) -> None:
    result = workspace.opslib("list", "--profile", "demo")
    assert result.returncode == 0, result.stderr
    assert "morning-check" in result.stdout and "budget-status" not in result.stdout


def test_list_for_an_unknown_profile_is_refused(workspace: Workspace) -> None:
    assert_one_line_refusal(workspace.opslib("list", "--profile", "dmeo"), "dmeo", "demo")


@pytest.mark.parametrize("timeout", ["0", "-1", "nan", "inf", "soon"])
def test_timeouts_must_be_positive_finite_seconds(workspace: Workspace, timeout: str) -> None:
    assert_one_line_refusal(
        workspace.opslib("run", "morning-check", "--timeout", timeout), "--timeout"
    )
    assert not workspace.reports.exists()


@pytest.mark.parametrize("content", ["", "- a\n- b\n", "name: a/b\n"])
def test_profiles_that_are_not_profiles_are_refused(workspace: Workspace, content: str) -> None:
    profile = workspace.root / "odd.yaml"
    profile.write_text(content)
    assert_one_line_refusal(
        workspace.opslib("run", "morning-check", "--profile", str(profile)), "odd.yaml"
    )
    assert not workspace.reports.exists()


def test_relative_profile_path_means_the_file_in_the_current_directory(
    workspace: Workspace,
) -> None:
    demo = (workspace.home / "parameters" / "profiles" / "demo.yaml").read_text()
    (workspace.root / "mine.yaml").write_text(demo.replace("name: demo", "name: mine"))
    result = workspace.opslib("run", "morning-check", "--profile", "mine.yaml")
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.startswith("WARNING morning-check on mine")


def test_history_of_an_empty_archive_reads_without_creating_anything(workspace: Workspace) -> None:
    result = workspace.opslib("history")
    assert result.returncode == 0 and result.stdout.strip() == "no runs recorded"
    assert not workspace.reports.exists()


SHADOW = "root:$6$secretcanary$Xq9vB:19700:0:99999:7:::\ndaemon:*:19700:0:99999:7:::\n"


@pytest.mark.parametrize("name", ["shadow", "shadow.yaml"])
def test_a_file_that_is_no_profile_is_refused_without_quoting_it(
    workspace: Workspace, name: str
) -> None:
    """`--profile /etc/shadow` once printed the password hashes as unknown keys."""
    path = workspace.root / name
    path.write_text(SHADOW)
    result = workspace.opslib("run", "morning-check", "--profile", str(path))
    assert_one_line_refusal(result, name)
    assert "secretcanary" not in result.stdout + result.stderr
    assert not workspace.reports.exists()


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        ("targets:\n  database:\n    url: sqlite:///x.db\n    connect_timeout: secretcanary\n",
         ["targets.database.connect_timeout", "not a positive duration"]),
        ("checks:\n  stuck_jobs: {warning: '5:secretcanary'}\n", ["checks.stuck_jobs.warning"]),
        ("severity:\n  P1: [secretcanary=CRITICAL]\n", ["no such check in severity.P1[0]"]),
        ("severity:\n  P1: [secretcanary=RED]\n", ["severity.P1.0", "is not CHECK=STATUS"]),
        ("queue: *secretcanary\n", ["line 2", "undefined alias"]),
        ("queue: !secretcanary {table: jobs}\n", ["line 2", "constructor for the tag"]),
        ("targets:\n  'secretcanary:$x': {url: x}\n", ["line 3", "unknown key that is not a name"]),
        ("checks:\n  stuck_jobs: {warning: [secretcanary]}\n", ["checks.stuck_jobs.warning"]),
        ("checks:\n  stuck_jobs: {warning: {secretcanary: 1}}\n", ["checks.stuck_jobs.warning"]),
    ],
)  # fmt: skip
def test_a_profile_error_names_the_key_and_never_quotes_a_value(
    workspace: Workspace, content: str, fragments: list[str]
) -> None:
    path = workspace.root / "hostile.yaml"
    path.write_text("name: hostile\n" + content)
    result = workspace.opslib("run", "morning-check", "--profile", str(path))
    assert_one_line_refusal(result, "hostile.yaml", *fragments)
    assert "secretcanary" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("target", "problem"),
    [
        ("database:\n    url: postgresql://ops:pw-secretcanary@localhost:54x2/db",
         "targets.database.url: port '54x2' is not a number"),
        ("database:\n    url: postgresql://ops:pw-secretcanary@localhost:99999/db",
         "targets.database.url: port '99999' is not from 1 to 65535"),
        ("database:\n    url: postgresql://ops@/db?host=/run/pg&port=54x2",
         "targets.database.url: port '54x2' is not a number"),
        ("database:\n    url: postgresql://ops:secretcanary",  # no @host: the password is no port
         "targets.database.url: the part after the host's ':' is not a port number"),
        ("redis:\n    url: redis://:pw-secretcanary@localhost:63x9/0",
         "targets.redis.url: port '63x9' is not a number"),
        # a password with an unencoded '@': what follows the first '@' is password text
        ("database:\n    url: postgresql://ops:p@secretcanary:word@localhost:5432/db",
         "targets.database.url: a password holding '@', '/', '?' or '#' must be percent-encoded"),
        ("database:\n    url: postgresql://ops:pw/secretcanary@localhost:5432/db",
         "targets.database.url: a password holding '@', '/', '?' or '#' must be percent-encoded"),
        # ... or with '@' and '/' (or '?'): the part read as the port is the password's
        ("database:\n    url: postgresql://ops:p@h:secretcanary/x@localhost:5432/db",
         "targets.database.url: the part after the host's ':' is not a port number"),
        ("redis:\n    url: redis://:p@h:secretcanary?x@localhost:6379/0",
         "targets.redis.url: the part after the host's ':' is not a port number"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("command", [("run", "morning-check", "--profile"), ("profile", "check")])
def test_a_target_url_with_a_bad_port_is_one_line_naming_the_key(
    workspace: Workspace, target: str, problem: str, command: tuple[str, ...]
) -> None:
    path = workspace.root / "badport.yaml"
    path.write_text(f"name: badport\ntargets:\n  {target}\n")
    result = workspace.opslib(*command, str(path))
    assert_one_line_refusal(result, f"{path}: {problem}")
    assert "secretcanary" not in result.stdout + result.stderr
    assert not workspace.reports.exists()
