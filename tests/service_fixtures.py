"""What the service tests run against: a real supervisord of their own (its config, unix
socket and logs in a temporary folder) and the demo's stand-in worker as the service."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

PROJECT = Path(__file__).resolve().parent.parent
SUPERVISORD = Path(sys.executable).with_name("supervisord")
SUPERVISORCTL = Path(sys.executable).with_name("supervisorctl")


def worker_command(name: str, folder: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "opslib.demo.worker",
        "--name",
        name,
        "--dir",
        str(folder),
        *extra,
    ]


def worker_regex(name: str, folder: Path) -> str:
    """The regex a profile names the worker by: anchored on its folder, so a worker of
    another folder (a prefix of it, or under it) is never matched."""
    return rf"opslib\.demo\.worker --name {name} --dir {folder}( |$)"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def pids_of(regex_folder: Path, name: str) -> list[int]:
    """The workers named `name` running for `regex_folder`, read from /proc."""
    wanted = worker_command(name, regex_folder)[1:]
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if (process.info["cmdline"] or [])[1:] == wanted:
            found.append(process.pid)
    return found


def end(pids: list[int]) -> None:
    """End exactly these processes (a test's own), waiting for them."""
    for pid in pids:
        try:
            process = psutil.Process(pid)
            process.kill()
            process.wait(3)
        except psutil.Error:
            continue


@dataclass
class Supervisor:
    """A supervisord running one program, `api`: the worker listening on `port`."""

    folder: Path
    config: Path
    port: int
    process: subprocess.Popen[bytes]

    @classmethod
    def start(cls, folder: Path) -> Supervisor:
        folder.mkdir(parents=True, exist_ok=True)
        port = free_port()
        user = "user=root\n" if os.geteuid() == 0 else ""
        command = " ".join(worker_command("api", folder / "api", "--port", str(port)))
        config = folder / "supervisord.conf"
        config.write_text(
            f"""[unix_http_server]
file={folder}/supervisor.sock

[supervisord]
logfile={folder}/supervisord.log
pidfile={folder}/supervisord.pid
childlogdir={folder}
nodaemon=true
{user}
[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{folder}/supervisor.sock

[program:api]
command={command}
directory={PROJECT}
autostart=true
autorestart=false
startsecs=0
stopwaitsecs=3
{user}"""
        )
        process = subprocess.Popen(
            [str(SUPERVISORD), "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        supervisor = cls(folder, config, port, process)
        supervisor.wait_running()
        return supervisor

    def status(self) -> str:
        done = subprocess.run(
            [str(SUPERVISORCTL), "-c", str(self.config), "status", "api"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return done.stdout

    def wait_running(self, timeout_s: float = 10) -> None:
        deadline = time.monotonic() + timeout_s
        while "RUNNING" not in self.status():
            if time.monotonic() > deadline or self.process.poll() is not None:
                log = (self.folder / "supervisord.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"supervisord did not run its program: {log}")
            time.sleep(0.1)

    def api_pid(self) -> int:
        words = self.status().split()
        return int(words[words.index("pid") + 1].rstrip(","))

    def stop(self) -> None:
        self.process.terminate()  # supervisord stops its programs, then itself
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
