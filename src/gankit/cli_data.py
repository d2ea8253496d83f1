"""``gankit data``: download the public translation datasets (the catalog in gankit.data)."""

from __future__ import annotations

import click


@click.group("data")
def data_group() -> None:
    """Download the public CycleGAN / pix2pix datasets (see `gankit data list`)."""


@data_group.command("download")
@click.argument("name")
@click.option(
    "--root",
    metavar="DIR",
    help="Data root (default $GANKIT_DATA_ROOT, else ~/.cache/gankit/data).",
)
@click.option(
    "--mirror",
    "mirrors",
    multiple=True,
    metavar="URL",
    help="Base URL tried before the official one; the archive name is appended (repeatable).",
)
def data_download(name: str, root: str | None, mirrors: tuple[str, ...]) -> None:
    """Download, verify and extract dataset NAME; print how to train on it."""
    from gankit.data.catalog import CHECKSUMS_FILE, download, train_command

    done = download(name, root, mirrors)
    if done.archive is None:
        click.echo(f"gankit: {done.folder} is there already (delete it to download again)")
    else:
        checksums = done.folder.parent / CHECKSUMS_FILE
        click.echo(f"gankit: {done.archive} sha256 {done.sha256}")
        if done.checksum == "first-use":
            click.echo(f"  checksum: none published; trusted on first use and recorded in "
                       f"{checksums}: later downloads are verified against it")  # fmt: skip
        else:
            where = "gankit's catalog" if done.checksum == "published" else str(checksums)
            click.echo(f"  checksum: verified against {where}")
    click.echo(f"gankit: {done.entry.name} ({done.entry.kind}) is in {done.folder}")
    click.echo(f"  train: {train_command(done.entry, done.folder)}")


@data_group.command("list")
def data_list() -> None:
    """Show the datasets `gankit data download` knows."""
    from gankit.data.catalog import CATALOG

    click.echo(f"  {'name':<24}{'loads as':<10}{'size':<10}{'direction':<11}contents")
    for entry in CATALOG.values():
        click.echo(f"  {entry.name:<24}{entry.kind:<10}{entry.approx_size:<10}"
                   f"{entry.direction:<11}{entry.summary}")  # fmt: skip
    click.echo("checksums: none is published; the first download's sha256 is recorded in "
               "<root>/checksums.json and later downloads are verified against it")  # fmt: skip
