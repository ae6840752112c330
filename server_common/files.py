"""Files a command writes for an operator (``links export``, ``index export``): whole or
not at all, readable by their owner alone, and never over a file already there unless
the operator says so.

An export holds identities (which councils know a child, a source system's row ids), so
it is created ``0600`` whatever the umask; it is written under a temporary name beside
the target and put in place only once complete and flushed, so an export that fails
half way (the database gone, the disk full) leaves no half file for someone to load;
and a mistyped ``--out`` naming another file is refused rather than written over it
(``--overwrite`` says it is meant). Key files have their own writers
(``protocol.keys``), built the same way.
"""

from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TextIO, TypeVar

from protocol.errors import ValidationError
from protocol.keys import sync_directory

OWNER_ONLY = 0o600
T = TypeVar("T")


def refuse_existing(path: Path, *, overwrite: bool, option: str = "--out") -> None:
    """400 ``invalid_field`` naming ``option`` when ``path`` exists (a dangling link
    too: writing through it would create its target) and ``overwrite`` is not given."""
    if not overwrite and (path.exists() or path.is_symlink()):
        raise _exists(path, option)


def _exists(path: Path, option: str) -> ValidationError:
    return ValidationError(option, f"{path} exists; give --overwrite to replace it")


def write_new(path: Path, write: Callable[[TextIO], T], *, overwrite: bool,
              option: str = "--out") -> T:
    """Call ``write`` with a text file (UTF-8, newlines as written: for ``csv``) that
    appears at ``path``, owner-only, only once ``write`` has returned and the bytes are
    on disk; returns what ``write`` returns. Without ``overwrite``, a file at ``path`` is
    refused before anything is written, and one created there meanwhile is left as it
    is (the new one is linked into place, which never replaces a file). ``write`` only
    writes: any ``OSError`` (no such folder, disk full) is reported as the file's."""
    refuse_existing(path, overwrite=overwrite, option=option)
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        tmp = Path(name)
        try:
            os.fchmod(fd, OWNER_ONLY)
            with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
                result = write(fh)
                fh.flush()
                os.fsync(fh.fileno())
            if overwrite:
                os.replace(tmp, path)
            else:
                try:
                    os.link(tmp, path)
                except FileExistsError as exc:
                    raise _exists(path, option) from exc
        finally:
            tmp.unlink(missing_ok=True)
        sync_directory(path.parent)
    except OSError as exc:  # named as the file asked for, never as a temporary one
        raise type(exc)(exc.errno, exc.strerror, str(path)) from exc
    return result


def write_csv(path: Path, columns: Sequence[str], rows: Iterable[Sequence[object]], *,
              overwrite: bool) -> None:
    """A header of ``columns``, then ``rows``, as :func:`write_new` writes a file."""
    def write(fh: TextIO) -> None:
        writer = csv.writer(fh)
        writer.writerow(columns)
        writer.writerows(rows)

    write_new(path, write, overwrite=overwrite)
