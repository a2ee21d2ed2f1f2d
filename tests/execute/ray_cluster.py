"""A real Ray cluster for tests: a head and a worker node, separate ``ray start`` processes on
loopback, each with a fixed CPU count, every port chosen free (two test processes may each start
one at once), state in a private temporary folder.

Each node is started in its own session, whose id is the pid of its ``ray start``. Every process
of the node stays in that session: the GCS (head), the raylet, its agents, and the workers, although
each worker leads a process group of its own (so killing the node's process group would miss them).
:meth:`LocalCluster.kill_node` SIGKILLs every process of one node's session, as when its machine
dies. Teardown does that to every node, head last, never ``ray stop`` (it stops every Ray instance
of the user on the machine), and not SIGTERM first: the GCS and raylets, sent SIGTERM all at once,
were still alive 30 s later, and a test cluster's state is thrown away. Each node's temporary files
(``TMPDIR``: e.g. the scratch folder of a run whose worker was killed) are in the cluster's
temporary folder, removed with it.
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
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` ports free now, all different: bound at once (ports found free one after the
    other can repeat, and Ray refuses a node whose components share a port)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]


PORT_FLAGS = (
    "--ray-client-server-port",
    "--dashboard-port",
    "--dashboard-agent-listen-port",
    "--dashboard-agent-grpc-port",
    "--runtime-env-agent-port",
    "--metrics-export-port",
    "--node-manager-port",
    "--object-manager-port",
)


def _port_args(ports: list[int]) -> list[str]:
    return [arg for name, port in zip(PORT_FLAGS, ports, strict=True) for arg in (name, str(port))]


@dataclass
class LocalCluster:
    address: str
    temp_dir: Path
    sessions: list[int] = field(default_factory=list)  # the session id of each node
    log: Path | None = None
    killed: set[int] = field(default_factory=set)  # nodes killed (their session ids may be reused)

    def kill_node(self, index: int) -> list[int]:
        """SIGKILL every process of node ``index`` (0: the head), as when its machine dies:
        the raylet, its agents and workers, until none is left; their pids."""
        if index in self.killed:
            return []
        session, killed = self.sessions[index], set()
        deadline = time.monotonic() + 30
        while pids := node_processes(session):
            if time.monotonic() > deadline:
                raise RuntimeError(f"processes {pids} of node {index} survive SIGKILL")
            for pid in pids:
                _signal(pid, signal.SIGKILL)
            killed.update(pids)
            time.sleep(0.05)
        self.killed.add(index)
        return sorted(killed)

    def stop(self) -> None:
        for index in reversed(range(len(self.sessions))):
            self.kill_node(index)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def node_processes(session: int) -> list[int]:
    """The live processes of the session ``session`` (a node's), zombies left out."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # /proc/PID/stat: "PID (COMM) STATE PPID PGRP SESSION ..."; COMM may hold spaces.
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[3]) == session and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


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
    scratch = cluster.temp_dir / f"tmp{len(cluster.sessions)}"
    scratch.mkdir()
    with cluster.log.open("a") as log:
        process = subprocess.Popen(
            [str(RAY), "start", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**node_env(), "TMPDIR": str(scratch)},
            start_new_session=True,
        )
        cluster.sessions.append(process.pid)
        code = process.wait(timeout=180)
    if code != 0:
        raise RuntimeError(f"ray start {' '.join(args)} failed:\n{cluster.log.read_text()}")


@contextlib.contextmanager
def local_cluster(cpus: tuple[int, ...] = (1, 1)) -> Iterator[LocalCluster]:
    """Start a head (``cpus[0]`` CPUs) and one worker node per further entry; stop them all,
    whatever happens. The temporary folder is short: Ray's Unix socket paths must fit 107 bytes."""
    temp = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))
    port, *ports = free_ports(1 + len(PORT_FLAGS) * len(cpus))
    per_node = [ports[i : i + len(PORT_FLAGS)] for i in range(0, len(ports), len(PORT_FLAGS))]
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
                *_port_args(per_node[0]),
            ],
        )
        for n, node_ports in zip(cpus[1:], per_node[1:], strict=True):
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
                    *_port_args(node_ports),
                ],
            )
        yield cluster
    finally:
        cluster.stop()
