"""A feed file's bytes as lines of text, before any CSV is read (``local_node.feeds``).

UTF-8 (a leading byte-order mark is the parser's to drop), or UTF-16 when the file
starts with its byte-order mark (Excel's "Unicode text", some database exports), so
nothing is guessed. A line that is not UTF-8 is kept, its bad bytes replaced, and
named with the reason, for the parser to report as that line's problem and skip: the
other lines still load. A file over the limit, or one that never ends (a device), is
refused once that much is read.
"""

from __future__ import annotations

import codecs
import io
from pathlib import Path

# The largest feed file read by default (the node's ingest.max_feed_bytes).
MAX_FEED_BYTES = 1024 * 1024 * 1024


class Unreadable(Exception):
    """The file as a whole cannot be read as a feed: why."""


def feed_lines(path: Path, max_bytes: int = MAX_FEED_BYTES) -> tuple[list[str], dict[int, str]]:
    """The file's lines (each with its newline), and the lines that were not UTF-8 by
    number (from 1), each with why. Raises :class:`Unreadable`."""
    with Path(path).open("rb") as file:
        data = file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise Unreadable(f"the file is over {max_bytes:,} bytes (ingest.max_feed_bytes): "
                         "split it, or raise the limit")
    bad_lines: dict[int, str] = {}
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise Unreadable(f"not valid UTF-16 (at byte {exc.start} of the file), though "
                             "it starts with a UTF-16 byte-order mark") from exc
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text, bad_lines = _decode_by_line(data)
    # newline="": split on \n, \r\n or \r only, never on U+2028 and friends inside a name.
    return io.StringIO(text, newline="").readlines(), bad_lines


def _decode_by_line(data: bytes) -> tuple[str, dict[int, str]]:
    parts: list[str] = []
    bad: dict[int, str] = {}
    for number, raw in enumerate(data.splitlines(keepends=True), 1):
        try:
            parts.append(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            bad[number] = (f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at character "
                           f"{exc.start + 1} of the line; a file saved as Windows-1252 or "
                           "Latin-1 must be saved again as CSV UTF-8)")
            parts.append(raw.decode("utf-8", errors="replace"))
    return "".join(parts), bad
