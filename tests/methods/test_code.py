"""A method's code identity: a hash of its defining modules' source bytes (methods/code.py).

At a1469a8 nothing identified a method's code (only the distribution's version, which an
editable install keeps while its loss is edited), so each test here would have failed there.
"""

from __future__ import annotations

import hashlib
import importlib
import sys
from pathlib import Path

import pytest

from dml_bench.methods import METHODS
from dml_bench.methods.code import HASH_LENGTH, code_identity, method_code, source_hash

PLUGIN = """
from dataclasses import dataclass


@dataclass(frozen=True)
class Config:
    m_per_class: int | None = None


def build_loss(num_classes, embedding_size, config):
    return {loss!r}
"""


class Spec:
    """The attributes code_identity reads from a MethodSpec."""

    def __init__(self, module: object) -> None:
        self.build_loss = module.build_loss  # type: ignore[attr-defined]
        self.build_miner = None
        self.config_cls = module.Config  # type: ignore[attr-defined]


def load(folder: Path, loss: str, newline: str = "\n") -> object:
    """Write the plugin module ``my_loss_mod`` into ``folder`` and import it from there."""
    folder.mkdir(parents=True, exist_ok=True)
    text = PLUGIN.format(loss=loss).replace("\n", newline)
    (folder / "my_loss_mod.py").write_bytes(text.encode())
    sys.modules.pop("my_loss_mod", None)
    sys.path.insert(0, str(folder))
    try:
        importlib.invalidate_caches()
        return importlib.import_module("my_loss_mod")
    finally:
        sys.path.remove(str(folder))


@pytest.fixture(autouse=True)
def _forget_module() -> object:
    yield
    sys.modules.pop("my_loss_mod", None)


def test_the_hash_is_of_the_source_bytes_not_the_path(tmp_path: Path) -> None:
    """Two installs of the same source in different places (machines) hash the same; the hash
    is SHA-256 over the module's name and source, computed here independently."""
    a = code_identity(Spec(load(tmp_path / "a", "v1")), "my-plugin", "0.1")
    b = code_identity(Spec(load(tmp_path / "b" / "deeper", "v1")), "my-plugin", "0.1")
    source = (tmp_path / "a" / "my_loss_mod.py").read_bytes()
    expected = hashlib.sha256(b"my_loss_mod\0" + source + b"\0").hexdigest()[:HASH_LENGTH]
    assert a.source_hash == b.source_hash == expected
    assert a.modules == ("my_loss_mod",)
    crlf = code_identity(Spec(load(tmp_path / "c", "v1", newline="\r\n")), "my-plugin", "0.1")
    assert crlf.source_hash == a.source_hash  # a checkout with CRLF line endings


def test_an_edited_loss_has_another_hash_with_the_same_version(tmp_path: Path) -> None:
    old = code_identity(Spec(load(tmp_path / "a", "v1")), "my-plugin", "0.1")
    new = code_identity(Spec(load(tmp_path / "a", "v2")), "my-plugin", "0.1")
    assert old.version == new.version and old.source_hash != new.source_hash


def test_built_in_methods_hash_their_own_modules() -> None:
    identity = method_code("proxy_nca")
    spec = METHODS.get("proxy_nca")
    assert spec.build_loss.__module__ in identity.modules
    assert identity.source_hash == source_hash(identity.modules) != ""
    assert identity.distribution and identity.to_json()["source_hash"] == identity.source_hash
    assert method_code("nca").source_hash != identity.source_hash
