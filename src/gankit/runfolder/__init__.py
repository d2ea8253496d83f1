"""A run folder's files: its layout, checkpoints, records, images and export.

Everything that reads or writes ``runs/<name>/`` lives here, so the web server, the Python API
and the commands read run folders without importing the training package (docs/design.md).
"""

from gankit.runfolder.layout import RunDir

__all__ = ["RunDir"]
