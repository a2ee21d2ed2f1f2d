"""A real Ray cluster for tests: a head and a worker node, separate ``ray start`` processes on
loopback, each with a fixed CPU count, every port chosen free (two test processes may each start
one at once), state in a private temporary folder.

Teardown never uses ``ray stop`` (it stops every Ray instance of the user on the machine): each
node is started in its own session, so its daemons share one process group, which is sent SIGTERM
and then SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

RAY = Path(sys.executable).parent / "ray"
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_args() -> list[str]:
    names = (
        "--ray-client-server-port",
        "--dashboard-port",
        "--dashboard-agent-listen-port",
        "--dashboard-agent-grpc-port",
        "--runtime-env-agent-port",
        "--metrics-export-port",
        "--node-manager-port",
        "--object-manager-port",
    )
    return [arg for name in names for arg in (name, str(free_port()))]


@dataclass
class LocalCluster:
    address: str
    temp_dir: Path
    groups: list[int] = field(default_factory=list)
    log: Path | None = None

    def stop(self) -> None:
        for group in self.groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(_alive(g) for g in self.groups):
            time.sleep(0.1)
        for group in self.groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def _alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def node_env() -> dict[str, str]:
    """The nodes import this checkout's dml_bench (its workers run the tasks)."""
    path = os.environ.get("PYTHONPATH", "")
    return {
        **os.environ,
        "PYTHONPATH": f"{REPO}{os.pathsep}{path}" if path else str(REPO),
        "RAY_USAGE_STATS_ENABLED": "0",
        # Ray 2.60 turns token authentication on when a token file exists in ~/.ray, for some
        # processes and not others; a loopback test cluster needs none.
        "RAY_AUTH_MODE": "disabled",
    }


def _start_node(cluster: LocalCluster, args: list[str]) -> None:
    assert cluster.log is not None
    with cluster.log.open("a") as log:
        process = subprocess.Popen(
            [str(RAY), "start", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=node_env(),
            start_new_session=True,
        )
        cluster.groups.append(process.pid)
        code = process.wait(timeout=180)
    if code != 0:
        raise RuntimeError(f"ray start {' '.join(args)} failed:\n{cluster.log.read_text()}")


@contextlib.contextmanager
def local_cluster(cpus: tuple[int, ...] = (1, 1)) -> Iterator[LocalCluster]:
    """Start a head (``cpus[0]`` CPUs) and one worker node per further entry; stop them all,
    whatever happens. The temporary folder is short: Ray's Unix socket paths must fit 107 bytes."""
    temp = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))
    port = free_port()
    cluster = LocalCluster(f"127.0.0.1:{port}", temp, log=temp / "start.log")
    common = [
        "--num-gpus",
        "0",
        "--disable-usage-stats",
        "--min-worker-port",
        "0",
        "--max-worker-port",
        "0",
        "--object-store-memory",
        str(80 * 2**20),
    ]
    try:
        _start_node(
            cluster,
            [
                "--head",
                "--node-ip-address",
                "127.0.0.1",
                "--port",
                str(port),
                "--num-cpus",
                str(cpus[0]),
                "--include-dashboard=false",
                "--temp-dir",
                str(temp),
                *common,
                *_port_args(),
            ],
        )
        for n in cpus[1:]:
            _start_node(
                cluster,
                [
                    "--address",
                    cluster.address,
                    "--node-ip-address",
                    "127.0.0.1",
                    "--num-cpus",
                    str(n),
                    *common,
                    *_port_args(),
                ],
            )
        yield cluster
    finally:
        cluster.stop()
