"""Profiles: validation names the file and key; secrets resolve only at use time."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from opslib.errors import ProfileError
from opslib.profiles import load_profile
from opslib.profiles.secrets import known_secrets, mask_url, scrub


def write(tmp_path: Path, text: str, name: str = "p.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_demo_profile_loads_with_its_queue_mapping() -> None:
    profile = load_profile("demo")
    assert profile.queue is not None and profile.queue.table == "jobs"
    assert profile.queue.stuck_after == 1800
    assert profile.provides("sqlite") and profile.provides("logs") and profile.provides("queue")


def test_misspelt_key_names_file_and_key_path(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\ntargets:\n  databse:\n    url: sqlite:///x.db\n")
    with pytest.raises(ProfileError) as error:
        load_profile(path)
    assert str(tmp_path / "p.yaml") in str(error.value)
    assert "targets.databse" in str(error.value)


def test_unknown_check_is_rejected_with_the_known_ones(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\nchecks:\n  stuk_jobs: {warning: '1'}\n")
    with pytest.raises(ProfileError, match=r"checks\.stuk_jobs.*known: .*stuck_jobs"):
        load_profile(path)


def test_bad_threshold_and_bad_duration_are_named(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=r"checks\.stuck_jobs\.warning"):
        load_profile(write(tmp_path, "name: x\nchecks:\n  stuck_jobs: {warning: 'lots'}\n"))
    with pytest.raises(ProfileError, match=r"queue\.stuck_after"):
        load_profile(
            write(tmp_path, "name: x\nqueue: {table: jobs, stuck_after: 'a while'}\n", "q.yaml")
        )


def test_invalid_yaml_reports_the_line(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=r"line 2"):
        load_profile(write(tmp_path, "name: x\nfoo: bar: baz\n"))


def test_missing_profile_suggests_close_names() -> None:
    with pytest.raises(ProfileError, match="did you mean demo"):
        load_profile("dmeo")


def test_references_resolve_at_use_time_not_at_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPSLIB_TEST_DSN", raising=False)
    profile = load_profile(
        write(tmp_path, "name: x\ntargets:\n  database:\n    url: ${OPSLIB_TEST_DSN}\n")
    )
    assert profile.targets.database.url == "${OPSLIB_TEST_DSN}"
    with pytest.raises(
        ProfileError,
        match=r"targets\.database\.url: environment variable OPSLIB_TEST_DSN is not set",
    ):
        profile.database_url()
    monkeypatch.setenv("OPSLIB_TEST_DSN", "postgresql://ops:hunter2-secret@db/pipeline")
    assert profile.database_url() == "postgresql://ops:hunter2-secret@db/pipeline"
    assert profile.database_display() == "postgresql://ops:***@db/pipeline"
    assert "postgresql://ops:hunter2-secret@db/pipeline" in known_secrets()


def test_defaults_apply_when_the_variable_is_unset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPSLIB_TEST_DIR", raising=False)
    profile = load_profile(
        write(tmp_path, "name: x\ntargets:\n  disks:\n    data: ${OPSLIB_TEST_DIR:-/srv/data}\n")
    )
    assert profile.disk_paths() == {"data": Path("/srv/data")}


def test_location_variables_are_shown_and_others_scrubbed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSLIB_TEST_HOME", "/srv/pipeline-home")
    monkeypatch.setenv("OPSLIB_TEST_TOKEN", "tok-0123456789")
    profile = load_profile(
        write(
            tmp_path,
            "name: x\ntargets:\n  disks:\n    a: ${OPSLIB_TEST_HOME}\n    b: /x/${OPSLIB_TEST_TOKEN}\n",
        )
    )
    profile.resolve_all()
    assert (
        scrub("home /srv/pipeline-home token tok-0123456789") == "home /srv/pipeline-home token ***"
    )


def test_url_passwords_are_masked_everywhere() -> None:
    assert (
        mask_url("failed: postgresql://u:p4ss@h:5432/db") == "failed: postgresql://u:***@h:5432/db"
    )
    assert mask_url("redis://:s3cret@h:6379/0") == "redis://:***@h:6379/0"
    assert mask_url("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"


def test_an_unknown_need_is_an_error_not_a_skip() -> None:
    with pytest.raises(ValueError, match="unknown need 'tape_library'"):
        load_profile("demo").provides("tape_library")


def test_a_default_may_hold_a_reference(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPOTS_DB", raising=False)
    monkeypatch.setenv("OPSLIB_DATA_DIR", str(tmp_path / "data"))
    spots = load_profile("spots")
    assert spots.database_path() == tmp_path / "data" / "spots" / "production.db"
    monkeypatch.setenv("SPOTS_DB", str(tmp_path / "real.db"))
    assert spots.database_path() == tmp_path / "real.db"
    assert str(tmp_path / "real.db") in scrub(spots.database_display())  # a location, not a secret


def test_thresholds_per_labelled_result_override_the_checks(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "name: x\nstages:\n  table: t\n  steps: {early: {column: a}, late: {column: b}}\n"
        "checks:\n  stage_coverage: {warning: '90:'}\n  stage_coverage[late]: {critical: '50:'}\n",
    )
    profile = load_profile(path)
    late = profile.check_settings("stage_coverage", "late")
    assert (late.warning, late.critical) == ("90:", "50:")
    assert profile.check_settings("stage_coverage", "early").critical is None
    with pytest.raises(ProfileError, match=r"checks\.stage_coverag"):
        load_profile(write(tmp_path, "name: x\nchecks:\n  stage_coverag[late]: {warning: '1'}\n"))
    typo = "name: x\nformats:\n  month: {table: t, column: c, pattern: x}\nchecks:\n  format_violations[mnth]: {warning: '1'}\n"
    with pytest.raises(ProfileError, match=r"checks\.format_violations\[mnth\] \(known: month\)"):
        load_profile(write(tmp_path, typo))


def test_format_patterns_and_process_patterns_must_compile(tmp_path: Path) -> None:
    bad = "name: x\nformats:\n  month: {table: t, column: c, pattern: '(Jan'}\n"
    with pytest.raises(ProfileError, match=r"formats\.month\.pattern.*not a valid regular"):
        load_profile(write(tmp_path, bad))


@pytest.mark.parametrize(
    ("command", "secret"),
    [
        ("psql postgresql://u:hunter22@db/x", "hunter22"),
        ("tool --password=hunter22 --verbose", "hunter22"),
        ("tool --api-key hunter22 -v", "hunter22"),
        ("env PGPASSWORD=hunter22 psql", "hunter22"),
        ("mysql -uroot -phunter22 db", "hunter22"),
        ('psql "host=db password=hunter22 dbname=x"', "hunter22"),
        ('curl -H "Authorization: Bearer hunter22" http://x', "hunter22"),
    ],
)
def test_secrets_on_command_lines_are_masked(command: str, secret: str) -> None:
    from opslib.profiles.secrets import command_line

    assert secret not in command_line(command)


def test_ordinary_command_lines_are_left_alone() -> None:
    from opslib.profiles.secrets import command_line

    for command in (
        "datasette serve production.db --port 8001",
        "python -p8080 x",
        "tokenize a.txt",
    ):
        assert command_line(command) == command


def test_a_relative_profile_path_is_read_from_the_current_directory_or_a_given_base(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub", "name: x\n")
    monkeypatch.chdir(tmp_path)
    assert load_profile("sub/p.yaml").path == tmp_path / "sub" / "p.yaml"
    assert load_profile("p.yaml", base=tmp_path / "sub").path == tmp_path / "sub" / "p.yaml"
    with pytest.raises(ProfileError, match="profile file p.yaml does not exist"):
        load_profile("p.yaml")


def test_a_yaml_mistake_without_a_line_is_still_one_clean_line(tmp_path: Path) -> None:
    # a control character has no line mark; the message once read `p.yaml:: not valid YAML`
    path = write(tmp_path, "name: x\u0007\n")
    with pytest.raises(ProfileError) as error:
        load_profile(path)
    assert str(error.value) == f"{path}: not valid YAML"


BILLION_LAUGHS = (
    "name: x\ntargets:\n  http:\n    api:\n      url: http://h/\n      expect_json:\n"
    + "".join(
        f"        a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 9) if n else 'lol'}]\n" for n in range(9)
    )
)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (BILLION_LAUGHS + "        all: *a8\n", "more than 100000 values once its aliases"),
        ("name: x\ntargets: " + "[" * 60 + "]" * 60 + "\n", "nested deeper than 50 levels"),
        ("name: x\ntargets: " + "[" * 5000 + "]" * 5000 + "\n", "nested deeper than 50 levels"),
        ("name: x\nqueue: &q {table: [*q]}\n", "an alias refers to the mapping or list that"),
    ],
)
def test_a_profile_too_big_to_walk_is_refused_before_validation(
    tmp_path: Path, text: str, problem: str
) -> None:
    with pytest.raises(ProfileError, match=problem):
        load_profile(write(tmp_path, text))


def test_a_postgres_connect_timeout_libpq_cannot_keep_is_refused_naming_the_key(
    tmp_path: Path,
) -> None:
    """libpq waits at least 2 s for a connection: a profile promising 1 s is told so."""
    path = tmp_path / "quick.yaml"
    path.write_text(
        "name: quick\ntargets:\n  database:\n"
        "    url: postgresql://ops@127.0.0.1:1/pipeline\n    connect_timeout: 1 s\n"
    )
    with pytest.raises(ProfileError, match=r"targets\.database\.connect_timeout: .* at least 2 s"):
        load_profile(str(path)).resolve_all()
    path.write_text(path.read_text().replace("1 s", "2 s"))
    load_profile(str(path)).resolve_all()


def test_many_bad_keys_are_refused_from_one_reading_of_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each error's line was found by composing the whole file again: 300 bad entries
    took 8.5 s, 3,000 never ended. The file is composed once, for the errors shown."""
    composed: list[str] = []
    compose = yaml.compose
    monkeypatch.setattr(
        yaml, "compose", lambda text, **kw: composed.append(text) or compose(text, **kw)
    )
    entries = "".join(f"  'bad key {n}!': {{warning: lots}}\n" for n in range(300))
    with pytest.raises(ProfileError, match=r": line 3: .*; line 7: .* and 295 more$"):
        load_profile(write(tmp_path, f"name: x\nchecks:\n{entries}"))
    assert len(composed) == 1
