"""The per-query results file: JSON Lines, one header line then one line per query.

Each line is written and flushed at once, so a crash or Ctrl-C loses at most the line being
written; reading tolerates (and, when resuming, cuts off) a truncated last line.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Mapping

from hybridgl_ros.core.errors import HybridGLError

_LOG = logging.getLogger(__name__)

FORMAT_VERSION = 1


class ResultsFileError(HybridGLError):
    """A results file is unreadable or belongs to another run."""


def read_results(path: str | Path) -> tuple[dict, list[dict], int]:
    """Reads a results file.

    Returns:
        (header, query records, byte length of the complete lines). A last line without its
        newline or not valid JSON (an interrupted write) is left out.

    Raises:
        ResultsFileError: no header, or a damaged line before the last.
    """
    path = Path(path)
    *lines, tail = path.read_bytes().split(b'\n')
    if tail:
        _LOG.warning('%s: dropping an unterminated last line (an interrupted write)', path)
    parsed, good_bytes = [], 0
    for number, line in enumerate(lines, start=1):
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError as exc:
            if number == len(lines) and not tail:
                _LOG.warning('%s: dropping the damaged last line %d', path, number)
                break
            raise ResultsFileError(f'{path}: line {number} is damaged ({exc})') from exc
        good_bytes += len(line) + 1
    if not parsed or parsed[0].get('kind') != 'header':
        raise ResultsFileError(f'{path}: not a hybridgl eval results file (no header line)')
    return parsed[0], parsed[1:], good_bytes


class ResultsWriter:
    """Appends records to a results file, one flushed line each.

    Use :meth:`create` for a new file and :meth:`reopen` to continue one.
    """

    def __init__(self, path: Path, stream) -> None:
        self.path = path
        self._stream = stream

    @classmethod
    def create(cls, path: str | Path, header: Mapping[str, Any]) -> 'ResultsWriter':
        """Starts a new file with ``header``; refuses to overwrite an existing one."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            stream = path.open('x', encoding='utf-8')
        except FileExistsError as exc:
            raise ResultsFileError(
                f'{path} exists: pass --resume to continue it, or choose another --out') from exc
        writer = cls(path, stream)
        writer.write({**header, 'kind': 'header', 'format': FORMAT_VERSION})
        return writer

    @classmethod
    def reopen(cls, path: str | Path, good_bytes: int) -> 'ResultsWriter':
        """Continues a file after its last complete line (cutting off a truncated one)."""
        path = Path(path)
        with path.open('r+b') as raw:
            raw.truncate(good_bytes)
        return cls(path, path.open('a', encoding='utf-8'))

    def write(self, record: Mapping[str, Any]) -> None:
        """Appends one record as one line and flushes it to the OS."""
        self._stream.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + '\n')
        self._stream.flush()

    def close(self) -> None:
        """Flushes to disk and closes."""
        if not self._stream.closed:
            self._stream.flush()
            os.fsync(self._stream.fileno())
            self._stream.close()

    def __enter__(self) -> 'ResultsWriter':
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
