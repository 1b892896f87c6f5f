"""HTTP health endpoints: the status and JSON fields each answers with, and its latency.

Each endpoint gets one GET on its own connection (so the latency includes connecting, as
a client sees it) with the profile's connect and read timeouts, no retries and redirects
followed. The read timeout alone does not bound a request: it limits each wait for the
next bytes, so a server that trickles a byte a second (an overloaded proxy, a stuck
streaming handler) keeps it alive for as long as it likes, and the runbook with it. The
body is therefore read piece by piece against a deadline of connect + read timeout from
the start, and at most 1 MB of it. Headers and the bodies of redirects are still bounded
only per read, by the read timeout.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import pandas as pd
import requests
from urllib3.exceptions import HTTPError, ReadTimeoutError

from opslib.errors import ProfileError
from opslib.probes import Metric, NotApplicable, ProbeError, TargetUnreachable
from opslib.profiles import Profile
from opslib.profiles.needs import switched_off
from opslib.profiles.secrets import scrub
from opslib.profiles.targets import HttpEndpoint
from opslib.status import Status

MAX_BODY_BYTES = 1_000_000
_PIECE_BYTES = 64 * 1024
_MISSING = object()


@dataclass(frozen=True)
class _Answer:
    status_code: int
    body: bytes
    complete: bool  # False: the body went past MAX_BODY_BYTES and was cut there
    latency_s: float


def endpoints(profile: Profile) -> list[Metric]:
    """One metric per `targets.http` endpoint, labelled with its name: the seconds to its
    full answer, or a CRITICAL verdict saying what differed from the profile (status,
    JSON field) or why it did not answer. The last metric carries a table of them all."""
    if not profile.targets.http:
        raise ProbeError(f"{profile.source} has no targets.http")
    metrics, rows = [], []
    for name, endpoint in profile.targets.http.items():
        if _switched_off(profile, name, endpoint):
            continue
        metric, row = check_endpoint(profile, name, endpoint)
        metrics.append(metric)
        rows.append(row)
    if not metrics:
        raise NotApplicable("every endpoint of targets.http is switched off (url set to nothing)")
    metrics[-1].table = pd.DataFrame(rows).astype({"status_code": "Int64"})
    return metrics


def _switched_off(profile: Profile, name: str, endpoint: HttpEndpoint) -> bool:
    """An endpoint whose `url: ${VAR:-}` resolves to nothing is off here (an external
    service checked only where its variable is set); a variable without a default that
    is not set is left to `check_endpoint` to report."""
    try:
        return switched_off(profile, endpoint.url, f"targets.http.{name}.url")
    except ProfileError:
        return False


def check_endpoint(
    profile: Profile, name: str, endpoint: HttpEndpoint
) -> tuple[Metric, dict[str, Any]]:
    """The metric for one endpoint and its row of the table."""
    key = f"targets.http.{name}"
    shown = scrub(endpoint.url)
    answer = None
    try:
        url = profile.expand(endpoint.url, f"{key}.url", url=True)
        shown = scrub(url)
        headers = {
            header: profile.expand(value, f"{key}.headers.{header}")
            for header, value in endpoint.headers.items()
        }
        answer = _fetch(url, headers, endpoint)
        problem = _problem(endpoint, answer)
        verdict = Status.CRITICAL if problem else None
        result = problem or _as_expected(endpoint, answer)
    except ProbeError as exc:
        result, verdict = exc.reason, exc.status
    except ProfileError as exc:  # a variable the profile names is not set
        result, verdict = f"not requested: {exc}", Status.UNKNOWN
    result = scrub(result)
    latency_s = answer.latency_s if answer else None
    row = {
        "endpoint": name,
        "url": shown,
        "status_code": answer.status_code if answer else None,
        "latency_ms": None if latency_s is None else round(latency_s * 1000, 1),
        "result": result,
    }
    return Metric(latency_s, f"{shown} {result}", label=name, verdict=verdict), row


def _fetch(url: str, headers: dict[str, str], endpoint: HttpEndpoint) -> _Answer:
    """GET the endpoint and its body; a failure leaves as `ProbeError` with the reason
    (`TargetUnreachable` when the endpoint did not answer)."""
    started = time.monotonic()
    try:
        response = requests.get(
            url,
            headers=headers,
            timeout=(endpoint.connect_timeout, endpoint.read_timeout),
            allow_redirects=True,
            stream=True,
        )
    except requests.ConnectTimeout:
        raise TargetUnreachable(f"did not connect within {endpoint.connect_timeout:g} s") from None
    except requests.ReadTimeout:
        raise TargetUnreachable(f"did not answer within {endpoint.read_timeout:g} s") from None
    except requests.ConnectionError as exc:
        raise TargetUnreachable(f"unreachable ({_root_cause(exc)})") from None
    except requests.RequestException as exc:
        if isinstance(exc, ValueError):  # a URL or header the profile got wrong
            raise ProbeError(f"not requested: {exc}", Status.UNKNOWN) from None
        raise ProbeError(str(exc), Status.CRITICAL) from None  # too many redirects
    with response:
        body, complete = _read_body(response, endpoint, started)
    return _Answer(response.status_code, body, complete, time.monotonic() - started)


def _read_body(
    response: requests.Response, endpoint: HttpEndpoint, started: float
) -> tuple[bytes, bool]:
    """Up to MAX_BODY_BYTES of the body, and whether that was all of it. `read1` returns
    what one socket read brings rather than waiting for a full piece, and each wait is cut
    to the time left, so the deadline holds against a trickle."""
    budget_s = endpoint.connect_timeout + endpoint.read_timeout
    deadline = started + budget_s
    connection = response.raw.connection
    sock = connection.sock if connection is not None else None  # None: already read
    body = bytearray()
    while len(body) <= MAX_BODY_BYTES:
        wait_s = min(endpoint.read_timeout, deadline - time.monotonic())
        if wait_s <= 0:
            raise TargetUnreachable(f"did not answer within {budget_s:g} s (body still arriving)")
        if sock is not None:
            sock.settimeout(wait_s)
        try:
            piece = response.raw.read1(_PIECE_BYTES, decode_content=True)
        except ReadTimeoutError:
            if wait_s < endpoint.read_timeout:
                reason = f"did not answer within {budget_s:g} s (body still arriving)"
            else:
                reason = f"stopped sending its body for {endpoint.read_timeout:g} s"
            raise TargetUnreachable(reason) from None
        except HTTPError as exc:
            raise TargetUnreachable(f"broke off its answer ({_root_cause(exc)})") from None
        if not piece:
            return bytes(body), True
        body += piece
    return bytes(body[:MAX_BODY_BYTES]), False


def _root_cause(exc: BaseException) -> str:
    """The innermost reason of a chained error: `Connection refused`, not the connection
    pool's account of its retries."""
    while (inner := exc.__cause__ or exc.__context__) is not None:
        exc = inner
    return getattr(exc, "strerror", None) or str(exc)


def _answered(answer: _Answer) -> str:
    return f"answered {answer.status_code} in {answer.latency_s * 1000:.1f} ms"


def _as_expected(endpoint: HttpEndpoint, answer: _Answer) -> str:
    fields = (
        f", {len(endpoint.expect_json)} JSON field(s) as expected" if endpoint.expect_json else ""
    )
    cut = "" if answer.complete else " (read the first 1 MB of its body)"
    return _answered(answer) + fields + cut


def _problem(endpoint: HttpEndpoint, answer: _Answer) -> str:
    """What differs from what the profile expects, in one line ('' when nothing does)."""
    if answer.status_code != endpoint.expect_status:
        return f"{_answered(answer)}, expected {endpoint.expect_status}"
    if not endpoint.expect_json:
        return ""
    if not answer.complete:
        return f"{_answered(answer)} but its body is over 1 MB, so no JSON field was checked"
    try:
        document = json.loads(answer.body)
    except ValueError as exc:  # not UTF-8 either
        return f"{_answered(answer)} but its body is not JSON ({exc}): {answer.body[:40]!r}"
    differences = [
        f"{path} is {_json(got)}, expected {_json(expected)}"
        for path, expected in endpoint.expect_json.items()
        if not _same(expected, got := _field(document, path))
    ]
    return f"{_answered(answer)} but {'; '.join(differences)}" if differences else ""


def _field(document: Any, path: str) -> Any:
    """The value at a dotted path (`db.connected`), or _MISSING."""
    node = document
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _same(expected: Any, got: Any) -> bool:
    """Equal as JSON values: `true` is not `1`, though Python says True == 1."""
    if isinstance(expected, bool) or isinstance(got, bool):
        return type(expected) is type(got) and expected == got
    return expected == got


def _json(value: Any) -> str:
    """A value as JSON would write it, cut short: the body is JSON, so is the report."""
    if value is _MISSING:
        return "missing"
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."
