"""Every registered family has what docs/adding-a-family.md asks for, and keeps the contract."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from gankit.config import preset_path
from gankit.objectives import OBJECTIVES, Objective
from gankit.objectives.translation import TranslationObjective
from gankit.objectives.wgan import Wasserstein
from tests.tiny_models import TINY

TESTS = Path(__file__).parent
FAMILIES = OBJECTIVES.names()
BASES = {Objective, TranslationObjective, Wasserstein}  # the small bases a family may build on


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_has_a_default_preset_a_tiny_config_and_a_test_file(family):
    assert preset_path(family, "default") is not None, f"configs/{family}/default.yaml"
    assert family in TINY, f"tests/tiny_models.py: TINY[{family!r}]"
    test_file = TESTS / f"test_family_{family.replace('-', '_')}.py"
    assert test_file.is_file(), test_file.name


@pytest.mark.parametrize("family", FAMILIES)
def test_a_family_inherits_at_most_one_family_deep(family):
    chain = [c for c in OBJECTIVES.get(family).__mro__ if issubclass(c, Objective)]
    families = [c for c in chain if c not in BASES]
    assert len(families) <= 2, f"{family}: {[c.__name__ for c in families]}"


@pytest.mark.parametrize("family", FAMILIES)
def test_a_family_never_reads_the_trainers_settings(family):
    """No ``cfg``/``self.cfg`` in a family module: the trainer hands over the step, the batch
    size and the optimiser settings (docs/design.md, "The objective contract")."""
    source = inspect.getsource(inspect.getmodule(OBJECTIVES.get(family)))
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in ("cfg", "train"):
            assert not (isinstance(node.value, ast.Name) and node.value.id == "self"), (
                f"{family}: self.{node.attr} at line {node.lineno}"
            )
