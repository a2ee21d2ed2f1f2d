"""What a new user meets first: every default in ``run --help``, did-you-mean for names, config
file errors naming the file and table, the missing-dataset message, ``prepare --check``."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from dml_bench.cli.main import cli
from dml_bench.cli.run_options import RUN_FLAGS
from dml_bench.data import fakes
from dml_bench.train.config import RunConfig


def test_run_help_shows_every_default() -> None:
    result = CliRunner().invoke(cli, ["run", "--help"], terminal_width=200)
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    defaults = {f.name: f.default for f in dataclasses.fields(RunConfig)}
    for flag in RUN_FLAGS:
        option = "--" + flag.replace("_", "-")
        assert option in text, option
        if flag in ("download", "prepared"):
            continue
        shown = re.search(re.escape(option) + r"\b.*?\[default: ([^\]]+)\]", text)
        assert shown, f"{option} shows no default"
        value = defaults[flag]
        if flag in ("pretrained", "resize", "crop"):
            assert shown.group(1).startswith("auto"), option
        elif isinstance(value, bool):
            assert shown.group(1) == ("on" if value else "off"), option
        else:
            assert shown.group(1) == str(value), option


def test_a_misspelt_method_gets_a_suggestion() -> None:
    result = CliRunner().invoke(cli, ["run", "--methods", "proxy_ncaa"])
    assert result.exit_code == 2 and "Did you mean 'proxy_nca'?" in result.output


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[run]\nstep = 3\n", "table [run]: Unknown run option 'step'. Did you mean 'steps'?"),
        ("[methods.proxy_nca]\nscal = 3\n", "table [methods.proxy_nca]: unknown key(s) 'scal'"),
        ("[run]\nsteps = \n", "is not valid TOML"),
    ],
)
def test_config_file_errors_name_the_file_and_table(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = tmp_path / "exp.toml"
    path.write_text(text)
    result = CliRunner().invoke(cli, ["run", "--config", str(path)])
    assert result.exit_code == 2
    output = " ".join(result.output.split())
    assert expected in output and str(path) in output and "\\n" not in output


def test_missing_dataset_names_the_flag_first_and_the_data_root(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["run", "--dataset", "cub200", "--data-root", str(tmp_path), "--steps", "1"]
    )
    assert result.exit_code == 2
    output = " ".join(result.output.split())
    assert output.index("--download") < output.index("download=True")
    assert "--data-root" in output and "$DML_BENCH_DATA_ROOT" in output


def test_prepare_check_lists_corrupt_images(tmp_path: Path) -> None:
    tree = fakes.make_folder_tree(tmp_path / "tree")
    runner = CliRunner()
    ok = runner.invoke(cli, ["prepare", "--dataset", f"folder:{tree}", "--check", "--no-progress"])
    assert ok.exit_code == 0 and "all 24 images decode" in ok.output
    broken = tree / "class_03" / "img_1.png"
    broken.write_bytes(broken.read_bytes()[:40])  # truncated
    with Image.open(tree / "class_00" / "img_0.png") as image:
        assert image.size == fakes.IMAGE_SIZE
    bad = runner.invoke(cli, ["prepare", "--dataset", f"folder:{tree}", "--check", "--no-progress"])
    assert bad.exit_code == 2
    assert f"{broken}:" in bad.output and "1 of the 24 images" in " ".join(bad.output.split())
    assert not (tmp_path / "prepared").exists()


def test_the_readme_config_file_plans(tmp_path: Path) -> None:
    """The README's TOML example is a valid config: every key exists, the sweep plans."""
    from dml_bench.cli.run_options import request_from_options
    from dml_bench.train import plan_runs

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    (block,) = [b for b in re.findall(r"```toml\n(.*?)```", readme, flags=re.S) if "[run]" in b]
    tree = fakes.make_folder_tree(tmp_path / "my_images", n_classes=10, per_class=8)
    path = tmp_path / "experiment.toml"
    path.write_text(block.replace("folder:my_images", f"folder:{tree}"))
    configs = plan_runs(request_from_options({"config_file": path}))
    assert len(configs) == 3 * (2 + 1)  # 3 seeds x (proxy_nca at scale 3 and 9, triplet)
    assert {c.method_config.scale for c in configs if c.method == "proxy_nca"} == {3.0, 9.0}
    assert all(
        (c.trunk, c.resize, c.crop, c.val_classes) == ("small_cnn", 64, 56, 0.2) for c in configs
    )
