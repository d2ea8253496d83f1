"""The public CycleGAN and pix2pix datasets, downloaded and extracted safely by name.

``gankit data download NAME`` fetches the archive its authors publish, extracts it beside it and
prints the ``gankit train`` command that uses it:

- CycleGAN sets (Zhu et al. 2017), ``https://efrosgans.eecs.berkeley.edu/cyclegan/datasets/``:
  zip files of ``<name>/trainA/ trainB/ testA/ testB/``; they load as data.source=unpaired.
- pix2pix sets (Isola et al. 2017), ``https://efrosgans.eecs.berkeley.edu/pix2pix/datasets/``:
  tar.gz files of ``<name>/train/ val/ test/`` (``test`` missing in some) holding side-by-side
  A|B images; they load as data.source=paired, in the direction the paper trains them.

Checksums. The authors publish no checksums, and none could be verified when this catalog was
written, so no entry carries one (none is made up). Downloads are therefore TRUST ON FIRST USE:
the sha256 of the first download (or of an archive found already in place) is recorded in
``<root>/checksums.json``, and every later download of that dataset into the same root is
verified against it: a different file is refused and not kept. An entry given a ``sha256`` is
always verified against that instead.

Extraction goes into a temporary folder beside the target, renamed into place once complete, so
an interrupted run never leaves a folder that looks finished. A member is refused, and with it
the whole archive (DataError naming it), for an absolute path, a drive letter or a ``..`` part,
or a symbolic/hard link whose target leaves the dataset folder. Links that stay inside and
special files (devices, FIFOs) are skipped and logged: links are never created. Archives whose
members declare more than :data:`MAX_EXTRACTED_BYTES` in total (the largest set here,
edges2handbags, is about 8.6 GB), more than :data:`MAX_MEMBERS` members, or one member over
:data:`MAX_MEMBER_BYTES` are refused; a member whose data runs past its declared size is refused.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import http.client
import json
import logging
import os
import posixpath
import shlex
import shutil
import stat
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from gankit.data.download import DEFAULT_TIMEOUT_S, DownloadError, download_to, fetch
from gankit.data.sources import default_data_root
from gankit.data.translation import LAYOUT_FOLDERS
from gankit.errors import DataError, GankitError

log = logging.getLogger("gankit.data")

MAX_EXTRACTED_BYTES = 32 * 2**30  # 32 GiB: total declared size of an archive's members
MAX_MEMBER_BYTES = 2 * 2**30  # 2 GiB: one member (the sets hold images of well under 1 MB)
MAX_MEMBERS = 2_000_000  # edges2handbags, the largest, holds about 140000 files
CHECKSUMS_FILE = "checksums.json"
_CHUNK_BYTES = 1 << 20

CYCLEGAN_MIRRORS = ("https://efrosgans.eecs.berkeley.edu/cyclegan/datasets/",)
PIX2PIX_MIRRORS = ("https://efrosgans.eecs.berkeley.edu/pix2pix/datasets/",)


@dataclass(frozen=True)
class CatalogEntry:
    """A published dataset: where it is, what it holds, how it loads."""

    name: str  # the name `gankit data download` takes; the folder it is extracted to
    file: str  # the archive's file name, appended to each mirror
    mirrors: tuple[str, ...]  # base URLs ending in "/", tried in order
    kind: Literal["unpaired", "paired"]  # the gankit data source it loads as
    approx_size: str  # download size, approximate ("?": unknown), for display only
    summary: str  # what A and B are
    direction: Literal["AtoB", "BtoA"] = "AtoB"  # the direction its paper trains it in
    sha256: str | None = None  # a verified checksum; None: trust on first use (module docs)

    @property
    def archive_format(self) -> Literal["zip", "tar.gz"]:
        return "zip" if self.file.endswith(".zip") else "tar.gz"

    @property
    def family(self) -> str:
        """The family of the paper that published it: cyclegan (unpaired) or pix2pix (paired)."""
        return "cyclegan" if self.kind == "unpaired" else "pix2pix"

    @property
    def urls(self) -> list[str]:
        return [mirror + self.file for mirror in self.mirrors]


def _cyclegan(name: str, size: str, summary: str, file: str | None = None) -> CatalogEntry:
    return CatalogEntry(name, file or f"{name}.zip", CYCLEGAN_MIRRORS, "unpaired", size, summary)


def _pix2pix(
    name: str, size: str, summary: str, direction: Literal["AtoB", "BtoA"] = "AtoB"
) -> CatalogEntry:
    return CatalogEntry(name, f"{name}.tar.gz", PIX2PIX_MIRRORS, "paired", size, summary,
                        direction)  # fmt: skip


# Sizes are approximate and only shown by `gankit data list` ("?": not known to us).
CATALOG: dict[str, CatalogEntry] = {
    entry.name: entry
    for entry in (
        _cyclegan("horse2zebra", "~110 MB", "ImageNet horses (A) and zebras (B)"),
        _cyclegan("apple2orange", "~75 MB", "ImageNet apples (A) and oranges (B)"),
        _cyclegan("summer2winter_yosemite", "~125 MB", "Yosemite in summer (A) and winter (B)"),
        _cyclegan("monet2photo", "~290 MB", "Monet paintings (A) and landscape photos (B)"),
        _cyclegan("cezanne2photo", "~270 MB", "Cezanne paintings (A) and landscape photos (B)"),
        _cyclegan("ukiyoe2photo", "~280 MB", "Ukiyo-e prints (A) and landscape photos (B)"),
        _cyclegan("vangogh2photo", "~290 MB", "Van Gogh paintings (A) and landscape photos (B)"),
        _cyclegan("iphone2dslr_flower", "~320 MB", "flowers by phone (A) and by DSLR (B)"),
        _cyclegan("facades-unpaired", "~35 MB", "CMP facades and their labels", "facades.zip"),
        _cyclegan("maps-unpaired", "?", "aerial photos and Google maps", "maps.zip"),
        _pix2pix("facades", "~30 MB", "CMP facades: photo | colour labels", "BtoA"),
        _pix2pix("cityscapes", "~100 MB", "Cityscapes: photo | colour labels", "BtoA"),
        _pix2pix("maps", "~250 MB", "Google Maps: aerial photo | map"),
        _pix2pix("edges2shoes", "~2 GB", "UT Zappos50K: edges | shoe photo"),
        _pix2pix("edges2handbags", "~8.6 GB", "iGAN handbags: edges | handbag photo"),
        _pix2pix("night2day", "?", "webcam scenes: night | day"),
    )
}


def catalog_entry(name: str) -> CatalogEntry:
    """The entry called ``name``; GankitError listing the valid names otherwise."""
    try:
        return CATALOG[name]
    except KeyError:
        raise GankitError(
            f"unknown dataset {name!r} for `gankit data download`; valid: {', '.join(CATALOG)}"
        ) from None


@dataclass(frozen=True)
class Downloaded:
    """What :func:`download` did."""

    entry: CatalogEntry
    folder: Path  # the extracted dataset: pass it as data.root
    archive: Path | None  # the archive on disk; None when the folder was already there
    sha256: str | None  # the archive's sha256; None when nothing was downloaded or checked
    checksum: Literal["published", "recorded", "first-use", "none"]  # how it was verified


def download(name: str, root: str | Path | None = None, mirrors: Sequence[str] = ()) -> Downloaded:
    """Fetch, verify and extract the dataset ``name`` into ``<root>/<name>``.

    root: the data root; None = ``$GANKIT_DATA_ROOT`` or ``~/.cache/gankit/data``.
    mirrors: base URLs tried before the official ones (the archive's file name is appended).
    Nothing is downloaded when ``<root>/<name>`` exists. Raises GankitError for an unknown name
    and DataError (DownloadError when no URL can be reached) with one line for the rest.
    """
    entry = catalog_entry(name)
    root = Path(root).expanduser() if root else default_data_root()
    folder = root / entry.name
    if folder.is_dir():
        return Downloaded(entry, folder, None, None, "none")
    root.mkdir(parents=True, exist_ok=True)
    archive = root / entry.file
    urls = [base if base.endswith("/") else base + "/" for base in mirrors]
    urls = [base + entry.file for base in urls] + entry.urls
    recorded = read_checksums(root).get(entry.name, {}).get("sha256")
    expected = entry.sha256 or recorded
    if expected is None:
        sha256, origin = _fetch_first_use(urls, archive)
        extract_archive(archive, folder)
        _record_checksum(root, entry, sha256, origin)  # only once the archive proved usable
        return Downloaded(entry, folder, archive, sha256, "first-use")
    try:
        fetch(urls, archive, expected)
    except DownloadError:
        raise
    except DataError as exc:  # a checksum mismatch
        where = "in gankit's catalog" if entry.sha256 else f"recorded in {root / CHECKSUMS_FILE}"
        raise DataError(f"{exc} (the expected sha256 is {where})") from None
    extract_archive(archive, folder)
    return Downloaded(entry, folder, archive, expected, "published" if entry.sha256 else "recorded")


def train_command(entry: CatalogEntry, folder: Path) -> str:
    """The ``gankit train`` command for ``entry`` extracted at ``folder``, with the papers'
    data settings: RGB, 256 x 256 crops from images resized to 286, random flips (CycleGAN and
    pix2pix "random jitter"), and the paper's direction."""
    flags = [
        f"gankit train {entry.family} --data {entry.kind} --data-root {shlex.quote(str(folder))}",
        "--set data.channels=3 --set data.resolution=256 --set data.resize=286",
        "--set data.crop=random --set data.flip=true",
    ]
    if entry.direction == "BtoA":
        flags.append("--set data.direction=BtoA")
    return " ".join(flags)


# --------------------------------------------------------------------------------------------------
# Trust on first use


def read_checksums(root: Path) -> dict[str, dict[str, str]]:
    """``<root>/checksums.json``: {dataset: {"file", "sha256", "source", "recorded"}}; {} when
    absent. A file that is not such a mapping is a DataError (it is never silently replaced)."""
    path = root / CHECKSUMS_FILE
    if not path.is_file():
        return {}
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable ({exc}); fix or delete it") from None
    if not isinstance(records, dict) or not all(isinstance(r, dict) for r in records.values()):
        raise DataError(f"{path}: not a mapping of dataset -> record; fix or delete it")
    return records


def _record_checksum(root: Path, entry: CatalogEntry, sha256: str, origin: str) -> None:
    records = read_checksums(root)
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    records[entry.name] = {"file": entry.file, "sha256": sha256, "source": origin,
                           "recorded": stamp, "trust": "first use"}  # fmt: skip
    handle, temp = tempfile.mkstemp(dir=root, prefix=f".{CHECKSUMS_FILE}.", suffix=".part")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        json.dump(records, out, indent=2, sort_keys=True)
        out.write("\n")
    os.chmod(temp, 0o644)  # mkstemp makes it private; the record is for every user of the root
    os.replace(temp, root / CHECKSUMS_FILE)


def _fetch_first_use(urls: list[str], dest: Path) -> tuple[str, str]:
    """Download ``dest`` from the first URL that works, with no checksum to check against.

    An archive already at ``dest`` (put there by hand) is used as it is. Returns (sha256, where
    it came from). The download goes to a temp file renamed into place when complete.
    """
    if dest.is_file():
        return _sha256_of(dest), f"file found at {dest}"
    failures = []
    for url in urls:
        try:
            return download_to(url, dest, None, DEFAULT_TIMEOUT_S), url
        except (OSError, http.client.HTTPException, ValueError) as exc:
            failures.append(f"{url}: {' '.join(str(getattr(exc, 'reason', exc)).split())}")
    reason = "; ".join(failures) or "no URL given"
    raise DownloadError(
        f"cannot download {dest.name} ({reason}); put {dest.name} in {dest.parent} by hand and "
        "run the command again",
        reason,
    )


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(_CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------------
# Safe extraction


def extract_archive(archive: Path, folder: Path) -> None:
    """Extract ``archive`` (.zip, .tar.gz, .tgz or .tar) into ``folder``, which must not exist.

    One top-level folder that wraps everything (``horse2zebra/``) becomes ``folder`` itself.
    Raises DataError for the unsafe archives of the module docstring; nothing is left behind.
    """
    if folder.exists():
        raise DataError(f"{folder} exists already; remove it to extract {archive.name} again")
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.extracting-"))
    try:
        staging.chmod(0o755)  # mkdtemp's 0o700 would follow the folder into place
        skipped = _extract_into(archive, staging)
        if skipped:
            examples = "; ".join(skipped[:5])
            log.warning("skipped %d member(s) of %s: %s", len(skipped), archive.name, examples)
        entries = list(staging.iterdir())
        top = entries[0] if len(entries) == 1 else None
        if top is not None and top.is_dir() and top.name.lower() not in LAYOUT_FOLDERS:
            os.replace(top, folder)
        else:
            os.replace(staging, folder)
    except OSError as exc:
        raise DataError(f"extracting {archive} into {folder.parent} failed: {exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _extract_into(archive: Path, staging: Path) -> list[str]:
    """Write the members of ``archive`` under ``staging``; the skipped ones, as "name (why)"."""
    name = archive.name.lower()
    try:
        if name.endswith(".zip"):
            with zipfile.ZipFile(archive) as opened:
                return _extract_zip(opened, staging)
        mode = "r|gz" if name.endswith((".tar.gz", ".tgz")) else "r|"
        with tarfile.open(archive, mode) as opened:  # streamed: one pass over the archive
            return _extract_tar(opened, staging, archive.name)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, tarfile.TarError, EOFError) as exc:
        raise DataError(f"{archive}: not a readable archive ({exc})") from None


def _extract_zip(archive: zipfile.ZipFile, staging: Path) -> list[str]:
    members = archive.infolist()
    if len(members) > MAX_MEMBERS:
        raise DataError(f"{archive.filename}: {len(members)} members exceed {MAX_MEMBERS}")
    total = sum(info.file_size for info in members)
    if total > MAX_EXTRACTED_BYTES:
        raise DataError(f"{archive.filename}: members declare {total} bytes, over the limit "
                        f"of {MAX_EXTRACTED_BYTES} (32 GiB)")  # fmt: skip
    free = shutil.disk_usage(staging).free
    if total > free:
        raise DataError(f"{archive.filename} needs {total} bytes, {staging.parent} has {free}")
    plan, skipped = [], []
    for info in members:  # check every member before writing any
        parts = _safe_parts(info.filename, archive.filename)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            if info.file_size > 4096:  # a link's content is its target path
                raise DataError(f"{archive.filename}: refused, link {info.filename} is too long")
            target = archive.read(info).decode("utf-8", "replace")
            _check_link(info.filename, target, symbolic=True, archive_name=archive.filename)
            skipped.append(f"{info.filename} (link)")
        elif "__MACOSX" in parts:
            continue  # macOS resource forks: not part of the dataset
        elif info.is_dir():
            (staging.joinpath(*parts)).mkdir(parents=True, exist_ok=True)
        elif info.file_size > MAX_MEMBER_BYTES:
            raise DataError(f"{archive.filename}: member {info.filename} declares "
                            f"{info.file_size} bytes, over {MAX_MEMBER_BYTES}")  # fmt: skip
        else:
            plan.append((info, parts))
    for info, parts in plan:
        with archive.open(info) as source:
            _write_member(source, staging, parts, info.file_size, info.filename)
    return skipped


def _extract_tar(archive: tarfile.TarFile, staging: Path, archive_name: str) -> list[str]:
    skipped, total = [], 0
    for count, member in enumerate(archive, start=1):
        if count > MAX_MEMBERS:
            raise DataError(f"{archive_name}: more than {MAX_MEMBERS} members")
        parts = _safe_parts(member.name, archive_name)
        if member.issym() or member.islnk():
            _check_link(member.name, member.linkname, member.issym(), archive_name)
            skipped.append(f"{member.name} (link)")
        elif member.isdir():
            staging.joinpath(*parts).mkdir(parents=True, exist_ok=True)
        elif not member.isfile():
            skipped.append(f"{member.name} (special file)")
        else:
            total += member.size
            if member.size > MAX_MEMBER_BYTES or total > MAX_EXTRACTED_BYTES:
                raise DataError(f"{archive_name}: member {member.name} takes the archive over "
                                f"the size limits ({MAX_MEMBER_BYTES} per member, "
                                f"{MAX_EXTRACTED_BYTES} in all)")  # fmt: skip
            source = archive.extractfile(member)
            assert source is not None  # a regular file always has data
            _write_member(source, staging, parts, member.size, member.name)
    return skipped


def _safe_parts(name: str, archive_name: str) -> tuple[str, ...]:
    """The path parts of a member name; DataError for one that could land outside the folder."""
    unified = name.replace("\\", "/")
    parts = tuple(part for part in unified.split("/") if part not in ("", "."))
    if unified.startswith("/") or not parts or ".." in parts or ":" in parts[0]:
        raise DataError(f"{archive_name}: refused, member {name!r} has an unsafe path")
    return parts


def _check_link(name: str, target: str, symbolic: bool, archive_name: str) -> None:
    """DataError when a link's target leaves the extracted folder (links are never created)."""
    unified = target.replace("\\", "/")
    base = posixpath.dirname(name.replace("\\", "/")) if symbolic else ""
    resolved = posixpath.normpath(posixpath.join(base, unified))
    first = resolved.split("/")[0]
    if unified.startswith("/") or resolved == ".." or first == ".." or ":" in first:
        kind = "symbolic link" if symbolic else "hard link"
        raise DataError(f"{archive_name}: refused, member {name!r} is a {kind} to {target!r} "
                        "outside the dataset folder")  # fmt: skip


def _write_member(source: IO[bytes], staging: Path, parts: tuple[str, ...], size: int,
                  name: str) -> None:  # fmt: skip
    """Copy one member to ``staging/parts``, refusing data beyond its declared ``size``."""
    target = staging.joinpath(*parts)
    target.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with target.open("wb") as out:
        for block in _blocks(source):
            written += len(block)
            if written > size:
                raise DataError(f"member {name} holds more data than its declared {size} bytes")
            out.write(block)


def _blocks(source: IO[bytes]) -> Iterator[bytes]:
    return iter(lambda: source.read(_CHUNK_BYTES), b"")
