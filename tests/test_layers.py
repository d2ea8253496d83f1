"""The layers of docs/design.md hold: what each entry point may import."""

from __future__ import annotations

import subprocess
import sys


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
