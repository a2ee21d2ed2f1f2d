"""Plugins through the real entry-point machinery: discovery, laziness, errors, the CLI end to end.

Nothing is installed and nothing is fetched: each test writes a temporary site directory holding
a distribution's metadata (``<name>-<version>.dist-info/METADATA`` and ``entry_points.txt``, what
``pip install`` would write) next to its modules. ``importlib.metadata`` finds the entry points
there exactly as it finds an installed plugin's. The in-process tests put that directory on the
path of a fresh registry's lookups (``monkeypatch.syspath_prepend``, undone after the test); the CLI
tests pass it as ``PYTHONPATH`` to a ``dml-bench`` subprocess. The example plugin in
``examples/plugin`` is "installed" this way from its own ``pyproject.toml``, so the test follows
what its authors declared.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from dml_bench.data import DATASETS
from dml_bench.errors import PluginError
from dml_bench.methods import METHODS, MethodSpec
from dml_bench.plugins import (
    DATASETS_GROUP,
    DISABLE_ENV,
    METHODS_GROUP,
    load_plugins,
    registry_loader,
)
from dml_bench.registry import DuplicateNameError, Origin, Registry

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "plugin"
TINY_HERSHEY = ("dataset.max_classes=40", "dataset.images_per_class=4", "dataset.image_size=16")

EntryPoints = Mapping[str, Mapping[str, str]]


# --- building a site directory ------------------------------------------------------------------


def write_distribution(site: Path, name: str, version: str, entry_points: EntryPoints) -> None:
    """The metadata ``pip install`` writes for a distribution, without any of its code."""
    dist_info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    )
    sections = []
    for group, points in entry_points.items():
        lines = [f"{entry} = {target}" for entry, target in points.items()]
        sections.append(f"[{group}]\n" + "\n".join(lines) + "\n")
    (dist_info / "entry_points.txt").write_text("\n".join(sections))


def write_module(site: Path, module: str, source: str) -> None:
    (site / f"{module}.py").write_text(textwrap.dedent(source))


def example_project() -> dict[str, Any]:
    return tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]


def install_example_plugin(site: Path) -> tuple[str, str]:
    """Copy the example's package into ``site`` with the metadata its pyproject declares."""
    project = example_project()
    for package in (EXAMPLE / "src").iterdir():
        if package.is_dir() and (package / "__init__.py").is_file():
            shutil.copytree(
                package, site / package.name, ignore=shutil.ignore_patterns("__pycache__")
            )
    write_distribution(site, project["name"], project["version"], project["entry-points"])
    return project["name"], project["version"]


SPEC_MODULE = """
    import dataclasses
    from dml_bench.methods import MethodConfig, MethodSpec
    from dml_bench.methods.triplet_semihard import SPEC as _TRIPLET

    SPEC = dataclasses.replace(_TRIPLET, name={name!r}, description="a test plugin")
"""


def fresh_method_registry(site: Path, monkeypatch: pytest.MonkeyPatch) -> Registry[MethodSpec]:
    """A registry loading only the plugins in ``site`` through :func:`load_plugins`."""
    monkeypatch.syspath_prepend(str(site))

    def loader(registry: Registry[MethodSpec]) -> None:
        load_plugins(METHODS_GROUP, registry, MethodSpec)

    return Registry("method", loader=loader)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Path]:
    """An empty site directory; the plugin modules a test imports from it are forgotten after."""
    path = tmp_path / "site"
    path.mkdir()
    yield path
    for module in [p.stem for p in path.glob("*.py")]:
        sys.modules.pop(module, None)


# --- discovery in process -----------------------------------------------------------------------


def test_names_read_metadata_only_and_the_module_loads_on_first_use(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = site / "imported.txt"
    write_module(
        site,
        "lazy_probe_plugin",
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('imported')\n"
        + textwrap.dedent(SPEC_MODULE.format(name="lazy_probe")),
    )
    write_distribution(
        site, "lazy-probe", "3.1", {METHODS_GROUP: {"lazy_probe": "lazy_probe_plugin:SPEC"}}
    )
    registry = fresh_method_registry(site, monkeypatch)
    assert registry.names() == ["lazy_probe"]
    assert registry.origin("lazy_probe") == Origin("lazy-probe", "3.1")
    assert not marker.exists() and "lazy_probe_plugin" not in sys.modules
    spec = registry.get("lazy_probe")
    assert marker.read_text() == "imported"
    assert isinstance(spec, MethodSpec) and spec.name == "lazy_probe"


def test_a_plugin_that_fails_to_import_names_its_distribution(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_module(site, "broken_import_plugin", "raise ImportError('needs libfoo >= 2')\n")
    write_distribution(
        site, "broken-plugin", "0.9", {METHODS_GROUP: {"broken": "broken_import_plugin:SPEC"}}
    )
    registry = fresh_method_registry(site, monkeypatch)
    assert registry.names() == ["broken"]  # listing does not import it
    with pytest.raises(PluginError) as raised:
        registry.get("broken")
    message = str(raised.value)
    assert "broken-plugin 0.9" in message and "needs libfoo >= 2" in message
    assert DISABLE_ENV in message


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("wrong_type_plugin:NOT_A_SPEC", "as a dict, but dml-bench expects a MethodSpec"),
        ("wrong_type_plugin:RENAMED", "object is named 'other_name'"),
    ],
    ids=["wrong-type", "name-mismatch"],
)
def test_an_entry_point_to_the_wrong_object_is_a_clear_error(
    site: Path, monkeypatch: pytest.MonkeyPatch, target: str, expected: str
) -> None:
    write_module(
        site,
        "wrong_type_plugin",
        "NOT_A_SPEC = {'name': 'odd'}\n"
        + textwrap.dedent(SPEC_MODULE.format(name="other_name")).replace("SPEC =", "RENAMED ="),
    )
    write_distribution(site, "odd-plugin", "1.0", {METHODS_GROUP: {"odd": target}})
    registry = fresh_method_registry(site, monkeypatch)
    with pytest.raises(PluginError, match=expected) as raised:
        registry.get("odd")
    assert "odd-plugin 1.0" in str(raised.value) and DISABLE_ENV in str(raised.value)


def test_two_plugins_claiming_one_name_are_named_both(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for dist in ("first-plugin", "second-plugin"):
        write_distribution(site, dist, "1.0", {METHODS_GROUP: {"shared": "nowhere:SPEC"}})
    registry = fresh_method_registry(site, monkeypatch)
    with pytest.raises(DuplicateNameError) as raised:
        registry.names()
    assert "first-plugin 1.0" in str(raised.value) and "second-plugin 1.0" in str(raised.value)


def test_disabling_plugins_skips_discovery(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_distribution(site, "some-plugin", "1.0", {METHODS_GROUP: {"some": "nowhere:SPEC"}})
    monkeypatch.setenv(DISABLE_ENV, "1")
    assert fresh_method_registry(site, monkeypatch).names() == []
    monkeypatch.setenv(DISABLE_ENV, "0")
    assert fresh_method_registry(site, monkeypatch).names() == ["some"]


def test_builtins_register_through_the_same_registries() -> None:
    """The built-ins carry the built-in origin; plugins are found on top of them."""
    assert METHODS.origin("proxy_nca") == Origin()
    assert DATASETS.origin("hershey") == Origin()


# --- the CLI in a subprocess --------------------------------------------------------------------


def dml_bench(
    site: Path, *args: str, cwd: Path, disable: bool = False
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != DISABLE_ENV}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), env.get("PYTHONPATH", "")) if p)
    if disable:
        env[DISABLE_ENV] = "1"
    return subprocess.run(
        [sys.executable, "-m", "dml_bench.cli.main", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def method_line(listing: str, name: str) -> str:
    lines = [line for line in listing.splitlines() if line.split()[:1] == [name]]
    assert len(lines) == 1, listing
    return lines[0]


def assert_one_paragraph_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    paragraph = result.stderr.strip()
    assert paragraph.startswith("Error: ") and "\n\n" not in paragraph
    flat = " ".join(paragraph.split())
    for needle in needles:
        assert needle in flat, flat


@pytest.mark.slow
def test_example_plugin_lists_trains_records_and_reports(site: Path, tmp_path: Path) -> None:
    dist, version = install_example_plugin(site)
    listing = dml_bench(site, "methods", cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    line = method_line(listing.stdout, "circle")
    assert f"{dist} {version}" in line and "4 per class" in line and " pair " in line
    assert "Circle loss" in line
    assert "built-in" in method_line(listing.stdout, "multi_similarity")
    assert "built-in" in method_line(listing.stdout, "proxy_nca")

    results = tmp_path / "results"
    settings = [arg for value in TINY_HERSHEY for arg in ("--set", value)]
    run = dml_bench(
        site,
        "run", "--methods", "circle,proxy_nca", "--steps", "4", "--eval-every", "2",
        "--batch-size", "16", *settings, "--results-dir", str(results),
        "--data-root", str(tmp_path / "data"), "--no-progress",
        cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    runs = {
        json.loads((f / "config.json").read_text())["method"]: f
        for f in results.iterdir()
        if (f / "config.json").exists()
    }
    assert set(runs) == {"circle", "proxy_nca"}
    plugin_origin = {"distribution": dist, "version": version}
    config = json.loads((runs["circle"] / "config.json").read_text())
    env = json.loads((runs["circle"] / "env.json").read_text())
    assert config["method_origin"] == plugin_origin and env["method_origin"] == plugin_origin
    assert config["method_config"]["gamma"] == 80.0 and config["sampler"] == "m_per_class:4"
    assert (
        json.loads((runs["proxy_nca"] / "env.json").read_text())["method_origin"]["distribution"]
        == "built-in"
    )
    summary = json.loads((runs["circle"] / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps"] == 4

    report = dml_bench(site, "report", "--results-dir", str(results), cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    table_rows = [line for line in report.stdout.splitlines() if line.startswith("|")]
    assert any("circle" in row for row in table_rows), report.stdout
    assert any("proxy_nca" in row for row in table_rows), report.stdout


@pytest.mark.slow
def test_example_plugin_passes_its_own_tests(site: Path, tmp_path: Path) -> None:
    install_example_plugin(site)
    env = {**os.environ, "PYTHONPATH": str(site), "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "tests")],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_clash_with_a_builtin_exits_2_naming_both(site: Path, tmp_path: Path) -> None:
    write_distribution(
        site, "clashing-plugin", "2.0", {METHODS_GROUP: {"proxy_nca": "nowhere:SPEC"}}
    )
    result = dml_bench(site, "methods", cwd=tmp_path)
    assert_one_paragraph_error(
        result, "'proxy_nca'", "dml-bench itself (built-in)", "clashing-plugin 2.0", DISABLE_ENV
    )
    disabled = dml_bench(site, "methods", cwd=tmp_path, disable=True)  # the way out it names
    assert disabled.returncode == 0, disabled.stderr
    assert "clashing-plugin" not in disabled.stdout
    assert "built-in" in method_line(disabled.stdout, "proxy_nca")


@pytest.mark.slow
def test_broken_plugin_exits_2_in_one_paragraph_but_is_never_imported_unless_used(
    site: Path, tmp_path: Path
) -> None:
    write_module(site, "broken_plugin_module", "import no_such_dependency_xyz\n")
    write_distribution(
        site, "broken-plugin", "0.1", {METHODS_GROUP: {"broken": "broken_plugin_module:SPEC"}}
    )
    result = dml_bench(site, "methods", cwd=tmp_path)
    assert_one_paragraph_error(result, "broken-plugin 0.1", "no_such_dependency_xyz", DISABLE_ENV)
    probe = (
        "import sys; from dml_bench.methods import METHODS; "
        "assert 'broken' in METHODS.names(); METHODS.get('proxy_nca'); "
        "assert 'broken_plugin_module' not in sys.modules; print('lazy')"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop(DISABLE_ENV, None)
    lazy = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=600
    )
    assert lazy.stdout.strip() == "lazy", lazy.stderr


DATASET_MODULE = '''
    """A tiny tensor dataset: 12 classes of 16x16 blobs, class-disjoint 6/6 split."""
    from dataclasses import dataclass
    from pathlib import Path

    import torch

    from dml_bench.data import DatasetConfig, DatasetSpec, Located


    @dataclass(frozen=True)
    class BlobsConfig(DatasetConfig):
        per_class: int = 6


    class Blobs:
        def __init__(self, offset: int, per_class: int) -> None:
            generator = torch.Generator().manual_seed(offset)
            self.classes = [f"blob{offset + c}" for c in range(6)]
            self.labels = [c for c in range(6) for _ in range(per_class)]
            centres = torch.randn(6, 1, 16, 16, generator=generator)
            noise = 0.3 * torch.randn(len(self.labels), 1, 16, 16, generator=generator)
            self.images = centres[torch.tensor(self.labels)] + noise
            self.transform = None

        def __len__(self) -> int:
            return len(self.labels)

        def __getitem__(self, index: int):
            return self.images[index], self.labels[index]


    def build(request, config):
        return Blobs(0 if request.split == "train" else 6, config.per_class)


    def locate(root: Path, config) -> Located:
        return Located(path=Path(root) / "blobs", found=True, detail="generated")


    SPEC = DatasetSpec(
        name="blobs",
        description="Gaussian blobs from a test plugin.",
        reference="none",
        config_cls=BlobsConfig,
        build=build,
        locate=locate,
        input_kind="tensor",
        channels=1,
    )
'''


@pytest.mark.slow
def test_dataset_plugin_is_listed_and_trains(site: Path, tmp_path: Path) -> None:
    write_module(site, "blobs_plugin", DATASET_MODULE)
    write_distribution(
        site, "blobs-plugin", "0.2", {DATASETS_GROUP: {"blobs": "blobs_plugin:SPEC"}}
    )
    listing = dml_bench(site, "datasets", "--data-root", str(tmp_path / "data"), cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    assert "Gaussian blobs from a test plugin." in listing.stdout
    assert method_line(listing.stdout, "blobs").split()[1] == "found"
    results = tmp_path / "results"
    run = dml_bench(
        site,
        "run", "--methods", "proxy_nca", "--dataset", "blobs", "--steps", "2", "--eval-every", "2",
        "--batch-size", "12", "--set", "dataset.per_class=4", "--results-dir", str(results),
        "--data-root", str(tmp_path / "data"), "--no-progress",
        cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    (folder,) = [f for f in results.iterdir() if (f / "config.json").exists()]
    config = json.loads((folder / "config.json").read_text())
    assert config["dataset"] == "blobs" and config["dataset_config"] == {"per_class": 4}
    assert config["num_test_classes"] == 6 and config["num_test_images"] == 24
    assert json.loads((folder / "summary.json").read_text())["status"] == "completed"


def test_the_one_loader_registers_built_ins_under_their_module_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(DISABLE_ENV, "1")
    registry: Registry[MethodSpec] = Registry(
        "method", loader=registry_loader("dml_bench.methods", ("nca",), METHODS_GROUP, MethodSpec)
    )
    assert registry.names() == ["nca"] and registry.origin("nca").is_builtin
    misnamed: Registry[MethodSpec] = Registry(
        "method", loader=registry_loader("dml_bench.data", ("hershey",), METHODS_GROUP, MethodSpec)
    )
    with pytest.raises(PluginError, match="dml_bench.data.hershey must define SPEC, a MethodSpec"):
        misnamed.names()
