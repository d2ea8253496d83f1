"""``gankit serve``: a local web page to watch training, explore generators and translate images.

Modules: :mod:`.runs` (finding run folders, their status, incremental reads of their logs),
:mod:`.generators` (generators cached per run, sample grids and interpolation strips),
:mod:`.uploads` (size, type and decompression-bomb checks), :mod:`.jobs` (translations in a
thread pool with progress), :mod:`.app` (the Starlette routes) and ``static/`` (the pages).

Needs the ``serve`` extra (``pip install 'gankit[serve]'``: Starlette and uvicorn).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

from gankit.errors import GankitError


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost: addresses only this machine can reach."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def create_app(settings: Any, **kwargs: Any) -> Any:
    """The ASGI app (see :func:`gankit.serve.app.create_app`)."""
    from gankit.serve.app import create_app as create

    return create(settings, **kwargs)


def serve(
    runs_dir: str | Path = "runs",
    host: str = "127.0.0.1",  # loopback by default: nobody else on the network can connect
    port: int = 8000,
    device: str = "cpu",
    max_upload_mb: float = 32,
    max_pixels: int = 24_000_000,
    stale_after: float = 180.0,
    log_level: str = "warning",
) -> None:
    """Serve the runs below ``runs_dir`` at http://host:port/ until interrupted."""
    try:
        import uvicorn

        from gankit.serve.app import ServeSettings, create_app
    except ImportError as exc:
        raise GankitError(
            f"gankit serve needs Starlette and uvicorn ({exc.name} is missing): "
            "pip install 'gankit[serve]'"
        ) from None
    settings = ServeSettings(
        runs_dir=Path(runs_dir),
        device=device,
        max_upload_bytes=int(max_upload_mb * 2**20),
        max_upload_pixels=max_pixels,
        stale_after=stale_after,
        allowed_hosts=None if is_loopback(host) else ["*"],
    )
    app = create_app(settings)
    uvicorn.run(app, host=host, port=port, log_level=log_level, server_header=False)
