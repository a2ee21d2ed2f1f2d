"""Bad input for ``--executor ray`` that needs no cluster: Ray missing, an address with nothing
behind it, options that contradict each other. Exit code 2, one paragraph, nothing recorded
lost; and the local path never imports Ray."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import Result

from dml_bench.execute import ExecutorSettings
from dml_bench.execute.connect import ClusterError, check_cluster
from tests.cli.helpers import describe, file_hashes, invoke, run_args, shared_data_root
from tests.execute.ray_cluster import free_port


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_data_root(tmp_path_factory)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Path:
    """A results directory holding one completed run, which no case may change."""
    results = tmp_path_factory.mktemp("results")
    result = invoke(run_args(results), data_root)
    assert result.exit_code == 0, describe(result)
    return results


def one_paragraph(result: Result, *named: str) -> str:
    assert result.exit_code == 2, describe(result)
    assert isinstance(result.exception, SystemExit), describe(result)
    assert "Traceback" not in result.output
    message = result.output[result.output.index("Error:") :].strip()
    assert "\n\n" not in message, message
    flat = " ".join(message.split())
    for value in named:
        assert value in flat, f"{value!r} not named in:\n{message}"
    return flat


def test_ray_not_installed(results: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    before = file_hashes(results)
    result = invoke(run_args(results, "--executor", "ray", "--seeds", "0,1"), data_root)
    one_paragraph(result, "--executor ray needs Ray", '".[ray]"', "--executor local")
    assert file_hashes(results) == before


@pytest.mark.ray
def test_an_address_with_no_cluster_behind_it_fails_at_once(
    results: Path, data_root: Path, needs_ray: None
) -> None:
    address = f"127.0.0.1:{free_port()}"
    before = file_hashes(results)
    start = time.monotonic()
    result = invoke(run_args(results, "--executor", "ray", "--address", address), data_root)
    assert time.monotonic() - start < 30
    one_paragraph(result, f"No Ray cluster answers at {address}", "ray start --head")
    assert file_hashes(results) == before


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--executor", "ray", "--address", "nonsense"], ["'nonsense'", "HOST:PORT"]),
        (["--address", "10.0.0.5:6379"], ["--address 10.0.0.5:6379", "--executor ray"]),
        (["--executor", "ray", "--cpus-per-run", "0"], ["--cpus-per-run", "got 0"]),
    ],
    ids=["address_not_host_port", "address_without_ray", "no_cpus"],
)
def test_contradicting_executor_options(
    results: Path,
    data_root: Path,
    extra: list[str],
    named: list[str],
    request: pytest.FixtureRequest,
) -> None:
    if "nonsense" in extra:  # the address is checked once Ray is imported
        request.getfixturevalue("needs_ray")
    before = file_hashes(results)
    one_paragraph(invoke(run_args(results, *extra), data_root), *named)
    assert file_hashes(results) == before


def test_the_local_executor_imports_no_ray(tmp_path: Path, data_root: Path) -> None:
    """A whole local run in a fresh interpreter: Ray is never imported (it may not be there)."""
    args = run_args(tmp_path / "results", "--executor", "local")
    code = (
        "import sys\n"
        "from dml_bench.cli.main import cli\n"
        f"cli.main(args={args!r}, standalone_mode=False)\n"
        "loaded = sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.'))\n"
        "assert not loaded, loaded\n"
        "print('no ray')\n"
    )
    env = {**os.environ, "DML_BENCH_DATA_ROOT": str(data_root)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0 and "no ray" in done.stdout, done.stdout + done.stderr
    assert (tmp_path / "results").is_dir() and any((tmp_path / "results").iterdir())


def fake_ray(*nodes: dict[str, object], here: str = "10.0.0.1") -> Any:
    """What check_cluster and check_storage read of Ray: the nodes and this node's address."""
    return SimpleNamespace(
        nodes=lambda: [{"Alive": True, **n} for n in nodes],
        util=SimpleNamespace(get_node_ip_address=lambda: here),
    )


def config(device: str = "cpu") -> Any:
    return SimpleNamespace(device=device)


@pytest.mark.parametrize(
    ("nodes", "device", "cpus", "named"),
    [
        ([{"Resources": {"CPU": 8.0}}], "cuda", 1.0, ["has none (1 node(s), 8 CPUs, 0 GPUs)"]),
        (
            [{"Resources": {"CPU": 8.0, "GPU": 1.0}}],
            "cuda:1",
            1.0,
            ["--device cuda:1", "--device cuda."],
        ),
        (
            [{"Resources": {"CPU": 2.0}}, {"Resources": {"CPU": 4.0}}],
            "cpu",
            6.0,
            ["6 CPU cores", "no node"],
        ),
    ],
    ids=["no_gpu", "cuda_n", "cpus_on_no_node"],
)
def test_a_plan_the_cluster_cannot_hold_is_refused(
    nodes: list[dict[str, object]], device: str, cpus: float, named: list[str]
) -> None:
    settings = ExecutorSettings("ray", cpus_per_run=cpus)
    with pytest.raises(ClusterError) as error:
        check_cluster(fake_ray(*nodes), [config(device)], settings)
    for value in named:
        assert value in str(error.value)


def test_a_plan_the_cluster_can_hold_passes() -> None:
    nodes = [{"Resources": {"CPU": 2.0}}, {"Resources": {"CPU": 4.0, "GPU": 2.0}}]
    check_cluster(
        fake_ray(*nodes), [config("cuda"), config("cpu")], ExecutorSettings("ray", cpus_per_run=4)
    )
