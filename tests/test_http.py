"""HTTP endpoints against a real local server: a healthy endpoint is OK with its latency;
a wrong status, a wrong JSON field, a hang, a trickle or a closed port is CRITICAL with
the reason, within the endpoint's timeouts, and a token sent in a header never shows."""

from __future__ import annotations

import json
import socket
import textwrap
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from opslib.probes.http import endpoints
from opslib.profiles import Profile, load_profile
from opslib.runbook import Finding, Runbook
from opslib.status import Status

HEALTHY = {"status": "ok", "db": {"connected": True}}
DEGRADED = {"status": "ok", "db": {"connected": False}}
TOKEN = "s3cret-http-token-4711"


class HealthServer(ThreadingHTTPServer):
    """A pipeline's health endpoints, well and badly behaved; records request headers."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), HealthHandler)
        self.stopping = threading.Event()
        self.authorizations: list[str | None] = []

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


class HealthHandler(BaseHTTPRequestHandler):
    server: HealthServer

    def do_GET(self) -> None:  # the name http.server dispatches to
        self.server.authorizations.append(self.headers.get("Authorization"))
        try:
            if self.path == "/health":
                self._send(200, json.dumps(HEALTHY).encode())
            elif self.path == "/degraded":
                self._send(200, json.dumps(DEGRADED).encode())
            elif self.path == "/error":
                self._send(503, b"Service Unavailable")
            elif self.path == "/html":
                self._send(200, b"<html>It works!</html>")
            elif self.path == "/big":
                self._send(200, b" " * 2_000_000 + json.dumps(HEALTHY).encode())
            elif self.path == "/hang":
                self.server.stopping.wait(30)  # accepted, never answered
            elif self.path == "/trickle":
                self.send_response(200)
                self.end_headers()
                for _ in range(40):  # one byte per 0.5 s for 20 s
                    if self.server.stopping.wait(0.5):
                        return
                    self.wfile.write(b".")
                    self.wfile.flush()
        except OSError:  # the probe gave up and hung up: as intended
            pass

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # the base class names it so
        pass


@pytest.fixture
def server() -> Iterator[HealthServer]:
    health = HealthServer()
    thread = threading.Thread(target=health.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield health
    health.stopping.set()  # releases /hang and /trickle handlers
    health.shutdown()
    health.server_close()
    thread.join(5)


def profile_for(tmp_path: Path, http_targets: str) -> Profile:
    """A profile whose `targets.http` is the given YAML."""
    path = tmp_path / "h.yaml"
    path.write_text(
        "name: h\ntargets:\n  http:\n" + textwrap.indent(textwrap.dedent(http_targets), "    ")
    )
    return load_profile(str(path))


def evaluate(profile: Profile) -> Finding:
    return Runbook("t", profile).evaluate("http_endpoint")


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_healthy_endpoint_is_ok_with_its_latency(tmp_path: Path, server: HealthServer) -> None:
    profile = profile_for(
        tmp_path,
        f"""
        api:
          url: {server.url("/health")}
          expect_json: {{status: ok, db.connected: true}}
        """,
    )

    [result] = evaluate(profile).results

    assert result.name == "http_endpoint[api]"
    assert result.status is Status.OK, result.summary
    assert 0 < result.value < 1
    assert "answered 200" in result.summary
    assert "2 JSON field(s) as expected" in result.summary


@pytest.mark.parametrize(
    ("path", "expect_json", "said"),
    [
        ("/degraded", "{status: ok, db.connected: true}", "db.connected is false, expected true"),
        ("/error", "{}", "answered 503 in"),
        ("/html", "{status: ok}", "its body is not JSON"),
        ("/big", "{status: ok}", "over 1 MB"),
    ],
    ids=["degraded-field", "status-503", "not-json", "body-over-1-MB"],
)
def test_an_endpoint_that_answers_wrongly_is_critical_saying_what_differed(
    tmp_path: Path, server: HealthServer, path: str, expect_json: str, said: str
) -> None:
    profile = profile_for(
        tmp_path,
        f"""
        api:
          url: {server.url(path)}
          expect_json: {expect_json}
        """,
    )

    [result] = evaluate(profile).results

    assert result.status is Status.CRITICAL
    assert said in result.summary, result.summary
    if path == "/error":
        assert "expected 200" in result.summary
    if path == "/html":
        assert "<html>It works!" in result.summary


def test_hanging_endpoint_is_critical_within_its_read_timeout(
    tmp_path: Path, server: HealthServer
) -> None:
    profile = profile_for(
        tmp_path,
        f"""
        api:
          url: {server.url("/hang")}
          read_timeout: 1 s
        """,
    )

    started = time.monotonic()
    [result] = evaluate(profile).results
    elapsed = time.monotonic() - started

    assert result.status is Status.CRITICAL
    assert result.value is None
    assert "did not answer within 1 s" in result.summary
    assert 0.9 <= elapsed < 2, f"read timeout is 1 s, took {elapsed:.1f} s"


def test_trickling_endpoint_is_cut_off_at_connect_plus_read_timeout(
    tmp_path: Path, server: HealthServer
) -> None:
    profile = profile_for(
        tmp_path,
        f"""
        api:
          url: {server.url("/trickle")}
          connect_timeout: 1 s
          read_timeout: 1 s
        """,
    )

    started = time.monotonic()
    [result] = evaluate(profile).results
    elapsed = time.monotonic() - started

    assert result.status is Status.CRITICAL
    assert result.value is None
    assert "did not answer within 2 s" in result.summary
    assert 1.9 <= elapsed < 3, f"connect + read is 2 s, took {elapsed:.1f} s"


def test_closed_port_is_critical_at_once(tmp_path: Path) -> None:
    profile = profile_for(tmp_path, f"api: {{url: 'http://127.0.0.1:{closed_port()}/health'}}")

    started = time.monotonic()
    [result] = evaluate(profile).results
    elapsed = time.monotonic() - started

    assert result.status is Status.CRITICAL
    assert result.value is None
    assert "unreachable (Connection refused)" in result.summary
    assert elapsed < 1, f"a refused connection took {elapsed:.1f} s"


def test_token_header_is_sent_and_never_shown(
    tmp_path: Path, server: HealthServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_HTTP_TOKEN", TOKEN)
    profile = profile_for(
        tmp_path,
        f"""
        api:
          url: {server.url("/health")}
          headers: {{Authorization: "Bearer ${{TEST_HTTP_TOKEN}}"}}
        broken:
          url: {server.url("/error")}
          headers: {{Authorization: "Bearer ${{TEST_HTTP_TOKEN}}"}}
        """,
    )

    metrics = endpoints(profile)  # unscrubbed, as the probe wrote them
    finding = evaluate(profile)

    assert server.authorizations == [f"Bearer {TOKEN}"] * 4
    shown = [m.summary for m in metrics] + [r.summary for r in finding.results]
    shown += [metrics[-1].table.to_string(), finding.tables[-1].to_string()]
    assert not [text for text in shown if TOKEN in text or "Bearer" in text]


def test_each_endpoint_is_judged_on_its_own(tmp_path: Path, server: HealthServer) -> None:
    profile = profile_for(
        tmp_path,
        f"""
        api: {{url: {server.url("/health")}}}
        broken: {{url: {server.url("/error")}}}
        """,
    )

    finding = evaluate(profile)

    assert [(r.name, r.status) for r in finding.results] == [
        ("http_endpoint[api]", Status.OK),
        ("http_endpoint[broken]", Status.CRITICAL),
    ]
    assert finding.tables[0] is None
    table = finding.tables[-1]
    assert list(table.columns) == ["endpoint", "url", "status_code", "latency_ms", "result"]
    assert table["endpoint"].tolist() == ["api", "broken"]
    assert table["status_code"].tolist() == [200, 503]
