"""Errors a user can cause. The CLI prints their one-line message and exits 2."""

from __future__ import annotations


class GankitError(Exception):
    """Base class: a mistake in input, config or files that the user can fix.

    The message is one line that names the file, key or value at fault.
    """


class ConfigError(GankitError):
    """A bad config key or value."""


class DataError(GankitError):
    """A data source that cannot be read or holds no usable image."""


class MetricError(GankitError):
    """A metric that cannot be computed: bad inputs, or its feature network is missing."""


class CheckpointError(GankitError):
    """A checkpoint or export that cannot be trusted or does not match the run."""
