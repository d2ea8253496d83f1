"""The objective registry, apart from the families so that each family module can import it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gankit.registry import Registry

if TYPE_CHECKING:
    from gankit.objectives.base import Objective

OBJECTIVES: Registry[type[Objective]] = Registry("family")
