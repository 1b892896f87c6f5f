"""Thresholds follow Nagios range semantics and read human units."""

from __future__ import annotations

import math

import pytest

from opslib.checks import CheckResult, Threshold, format_value, judge
from opslib.status import Status
from opslib.units import parse_quantity


@pytest.mark.parametrize(
    ("spec", "value", "alerts"),
    [
        ("80", 80, False),
        ("80", 80.5, True),
        ("80", -1, True),  # a bare number means 0..80
        ("10:", 10, False),
        ("10:", 9.9, True),
        ("~:10", -1e9, False),
        ("~:10", 11, True),
        ("10:20", 15, False),
        ("10:20", 21, True),
        ("@10:20", 15, True),  # @ inverts: alert inside the range
        ("@10:20", 25, False),
        ("0", 0, False),
        ("0", 1, True),
    ],
)
def test_nagios_range_semantics(spec: str, value: float, alerts: bool) -> None:
    assert Threshold.parse(spec).alerts(value) is alerts


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5 min", 300),
        ("2 hours", 7200),
        ("1 GB", 1e9),
        ("1 GiB", 2**30),
        ("95%", 95),
        ("2.5", 2.5),
        ("~", -math.inf),
    ],
)
def test_quantities_read_human_units(text: str, expected: float) -> None:
    assert parse_quantity(text) == expected


def test_units_work_inside_ranges() -> None:
    threshold = Threshold.parse("5 min:1 h")
    assert not threshold.alerts(600)
    assert threshold.alerts(60)
    assert threshold.alerts(3601)


def test_unreadable_threshold_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="fortnightish"):
        Threshold.parse("fortnightish")


def test_critical_outranks_warning_and_no_value_is_unknown() -> None:
    warning, critical = Threshold.parse("5"), Threshold.parse("10")
    assert judge(3, warning, critical) is Status.OK
    assert judge(7, warning, critical) is Status.WARNING
    assert judge(11, warning, critical) is Status.CRITICAL
    assert judge(None, warning, critical) is Status.UNKNOWN
    assert judge(float("nan"), warning, critical) is Status.UNKNOWN


def test_a_measured_critical_outranks_an_unknown_which_outranks_a_warning() -> None:
    assert Status.worst([Status.OK, Status.CRITICAL, Status.UNKNOWN]) is Status.CRITICAL
    assert Status.worst([Status.WARNING, Status.UNKNOWN, Status.OK]) is Status.UNKNOWN
    assert Status.worst([Status.OK, Status.WARNING]) is Status.WARNING
    assert Status.worst([]) is Status.OK
    assert [int(s) for s in Status] == [0, 1, 2, 3]


def test_results_round_trip_through_records() -> None:
    result = CheckResult("stuck_jobs", Status.WARNING, 3, "jobs", "0", "5", "3 stuck")
    assert CheckResult.from_record(result.to_record()) == result
    assert result.to_record()["status"] == "WARNING"


def test_values_are_formatted_for_people() -> None:
    assert format_value(7.125, "%") == "7.12%"
    assert format_value(3, "jobs") == "3 jobs"
    assert format_value(None, "s") == "n/a"
    assert "5 minutes" in format_value(300, "s")
