"""Shared fixtures: a real `muster agent` on loopback with a temp socket and a free port."""

import json
import os
import pathlib
import signal
import subprocess
import tempfile
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def muster_bin() -> str:
    path = os.environ.get("MUSTER_BIN") or str(ROOT / "target" / "debug" / "muster")
    if not os.access(path, os.X_OK):
        pytest.fail(f"muster binary not found at {path}: run `cargo build -p muster` first")
    return path


class Agent:
    _count = 0

    def __init__(self, bin_path: str, workdir: str):
        self.bin = bin_path
        # A cluster of its own, so that agents of other tests never mesh with this one.
        Agent._count += 1
        self.cluster = f"pytest-{os.getpid()}-{Agent._count}"
        self.socket = os.path.join(workdir, "muster.sock")
        config = os.path.join(workdir, "muster.toml")
        with open(config, "w") as f:
            f.write('socket_group = ""\nshutdown_timeout = "5s"\n')
        self.proc = subprocess.Popen(
            [bin_path, "agent", "--config", config, "--listen", "127.0.0.1:0",
             "--socket", self.socket, "--data-dir", os.path.join(workdir, "data"),
             "--node-name", "py-node", "--cluster", self.cluster],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 30
        while time.time() < deadline:
            out = self.cli("status", "--json", check=False)
            if out.returncode == 0:
                self.status = json.loads(out.stdout)
                self.tcp = self.status["listen"][0]
                return
            time.sleep(0.05)
        self.proc.kill()
        raise RuntimeError("agent did not come up: " + self.proc.stderr.read())

    def cli(self, *args, check=True):
        return subprocess.run([self.bin, *args, "--socket", self.socket],
                              capture_output=True, text=True, check=check)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def agent():
    with tempfile.TemporaryDirectory() as d:
        a = Agent(muster_bin(), d)
        try:
            yield a
        finally:
            a.stop()
