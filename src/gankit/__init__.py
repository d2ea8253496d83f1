"""gankit: train, evaluate and use generative adversarial networks with one trainer."""

from gankit.api import LoadedGenerator, load
from gankit.errors import GankitError
from gankit.launch import build_config, train
from gankit.version import __version__

__all__ = ["GankitError", "LoadedGenerator", "__version__", "build_config", "load", "train"]
