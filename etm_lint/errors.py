"""The error types that carry a file name, and the place in it, to the user."""

from __future__ import annotations


class EtmError(Exception):
    """Bad input or I/O trouble, told in one line; never a traceback."""


class CacheError(EtmError):
    """This tool's own cache cannot be written: trouble on this machine, not
    a finding about the input (the lint stops with exit status 2)."""


class FormatError(EtmError):
    """A file (or a bundle member) that is not what its format says.

    ``source`` names the file or ``bundle.etm:member``; ``offset`` is the byte
    offset where reading went wrong, when there is one.
    """

    def __init__(self, source: str, message: str, offset: int | None = None):
        self.source = source
        self.message = message
        self.offset = offset
        where = f" at byte {offset}" if offset is not None else ""
        super().__init__(f"{source}{where}: {message}")
