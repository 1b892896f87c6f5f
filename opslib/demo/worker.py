"""A stand-in pipeline worker, the process behind the demo profile's services.

`python -m opslib.demo.worker --name worker --dir DIR` writes its pid to DIR/NAME.pid and
the time to DIR/NAME.heartbeat every `--interval` seconds (and its start and stop
to DIR/events.log), optionally listening on a TCP
`--port`, until it is sent SIGTERM. It leaves on its own once its folder is removed, once
its pid file names another process (a newer demo started its successor) or after
`--lifetime` seconds, so a demo left behind never leaves workers behind for long.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import time
from pathlib import Path


def main(arguments: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m opslib.demo.worker")
    parser.add_argument("--name", required=True)
    parser.add_argument("--dir", required=True, type=Path)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--lifetime", type=float, default=12 * 3600)
    parser.add_argument("--port", type=int, default=None)
    options = parser.parse_args(arguments)
    options.dir.mkdir(parents=True, exist_ok=True)
    pidfile = options.dir / f"{options.name}.pid"
    heartbeat = options.dir / f"{options.name}.heartbeat"
    me = str(os.getpid())
    pidfile.write_text(me)
    _event(options.dir, f"{options.name} started pid {me}")
    signal.signal(signal.SIGTERM, _stop)
    listener = None
    if options.port:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", options.port))
        listener.listen()
    ends = time.monotonic() + options.lifetime
    try:
        while time.monotonic() < ends and _still_mine(pidfile, me):
            heartbeat.write_text(f"{time.time():.3f}\n")
            time.sleep(options.interval)
    except FileNotFoundError:  # the folder went away: the demo was removed
        pass
    finally:
        if listener is not None:
            listener.close()
        if _still_mine(pidfile, me):
            pidfile.unlink()
        _event(options.dir, f"{options.name} stopped pid {me}")
    return 0


def _event(folder: Path, what: str) -> None:
    """One line in the folder's events.log: the order services went up and down."""
    try:
        with (folder / "events.log").open("a") as log:
            log.write(f"{time.time():.3f} {what}\n")
    except OSError:
        pass


def _stop(*_: object) -> None:
    raise SystemExit(0)  # at once, through the cleanup below


def _still_mine(pidfile: Path, me: str) -> bool:
    try:
        return pidfile.read_text() == me
    except OSError:
        return False


if __name__ == "__main__":
    raise SystemExit(main())
