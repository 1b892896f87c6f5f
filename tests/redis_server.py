"""A real Redis server for the tests, on a free loopback port, persisting nothing."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import redis
from postgres_server import _free_port

MISSING = "redis-server is not installed: `make test` installs it with apt, or run `apt-get install redis-server`"


@dataclass
class RedisServer:
    process: subprocess.Popen[bytes]
    port: int
    base: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        # No retries: redis-py's default retry makes SHUTDOWN and dead-server calls take ~4 s.
        return redis.Redis(port=self.port, socket_timeout=5, retry=None, decode_responses=True)

    @classmethod
    def start(cls) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(MISSING)
        base = Path(tempfile.mkdtemp(prefix="opslib-redis-"))
        port = _free_port()
        process = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(base),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        server = cls(process, port, base)
        deadline = time.monotonic() + 10
        while True:
            try:
                server.client().ping()
                return server
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    server.stop()
                    raise
                time.sleep(0.02)

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)
        shutil.rmtree(self.base, ignore_errors=True)
