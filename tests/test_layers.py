"""The layers of docs/design.md hold: what each entry point may import."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest
from torch import nn

import gankit
import gankit.nets
from gankit.errors import ConfigError
from gankit.resolve import build_config, load_run_config

SRC = Path(gankit.__file__).parent


def _modules_after_import(*modules: str) -> set[str]:
    """The gankit modules loaded by importing ``modules`` in a fresh interpreter."""
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in modules)
        + "print('\\n'.join(m for m in sys.modules if m.startswith('gankit')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_the_server_api_and_commands_read_run_folders_without_the_training_package():
    loaded = _modules_after_import("gankit", "gankit.api", "gankit.commands", "gankit.serve.app")
    assert not {m for m in loaded if m == "gankit.training" or m.startswith("gankit.training.")}
    assert "gankit.runfolder.checkpoint" in loaded


def _imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_config_imports_no_registry_nor_the_packages_above_it():
    imported = _imported_modules(SRC / "config.py")
    banned = ("gankit.objectives", "gankit.metrics", "gankit.training", "gankit.data")
    assert not {m for m in imported if m.startswith(banned)}
    assert {m for m in imported if m.startswith("gankit")} == {"gankit.errors"}


def test_family_and_metric_names_are_still_checked_with_one_line(tmp_path):
    with pytest.raises(ConfigError, match=r"^config: family: unknown .*'nope'.*dcgan") as bad:
        build_config({"family": "nope"})
    assert "\n" not in str(bad.value)
    with pytest.raises(ConfigError, match=r"eval.metrics: unknown metric 'fdi'; valid: .*fid"):
        build_config({"family": "dcgan", "eval": {"metrics": ["fdi"]}})


def test_gankit_train_trains_from_python_by_the_cli_path(tmp_path):
    result = gankit.train(
        "dcgan", data="mnist-bundled", overrides={"train.steps": 20}, out=tmp_path / "run"
    )
    assert result.step == 20 and result.export_dir is not None
    cfg = gankit.build_config("dcgan", data="mnist-bundled", overrides=["train.steps=20"])
    assert load_run_config(tmp_path / "run").train == cfg.train
    assert gankit.load(result.export_dir).sample(2, seed=0).shape[0] == 2


def test_net_constructors_with_more_than_three_arguments_are_keyword_only():
    """Every nn.Module of gankit.nets whose own __init__ takes more than three arguments takes
    them all by keyword (a bare ``*`` after ``self``): no call can mix up two of them."""
    checked, positional = [], []
    for info in pkgutil.iter_modules(gankit.nets.__path__):
        module = importlib.import_module(f"gankit.nets.{info.name}")
        for name, cls in vars(module).items():
            if not (inspect.isclass(cls) and issubclass(cls, nn.Module)):
                continue
            if cls.__module__ != module.__name__ or "__init__" not in vars(cls):
                continue  # imported, or torch's own constructor (PlainBatchNorm2d)
            parameters = inspect.signature(cls).parameters.values()
            if len(parameters) > 3:
                checked.append(f"{info.name}.{name}")
                if any(p.kind is not inspect.Parameter.KEYWORD_ONLY for p in parameters):
                    positional.append(f"{info.name}.{name}")
    assert len(checked) >= 29 and positional == []
