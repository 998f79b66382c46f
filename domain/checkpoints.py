"""Where a source's reading stopped, so the next run resumes instead of starting over."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import attrs


@attrs.frozen
class FileCursor:
    """How far a file was read: its bytes up to `offset` hashed, so a rewrite is noticed.

    `size` and `mtime_ns` are the file's as it was being read; `complete` says the read reached
    its end, so a file still of that size and mtime can be skipped without being opened.
    """

    path: str
    offset: int
    prefix_sha256: str
    size: int
    mtime_ns: int
    complete: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"type": "file", **attrs.asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FileCursor:
        return cls(
            path=str(data["path"]),
            offset=int(data["offset"]),
            prefix_sha256=str(data["prefix_sha256"]),
            size=int(data["size"]),
            mtime_ns=int(data["mtime_ns"]),
            complete=bool(data.get("complete", False)),
        )


@attrs.frozen
class FilesCursor:
    """A checkpoint over a glob of files: one FileCursor per path."""

    files: tuple[FileCursor, ...] = ()

    def for_path(self, path: str) -> FileCursor | None:
        return next((cursor for cursor in self.files if cursor.path == path), None)

    def with_file(self, cursor: FileCursor) -> FilesCursor:
        others = tuple(existing for existing in self.files if existing.path != cursor.path)
        return FilesCursor(files=tuple(sorted((*others, cursor), key=lambda c: c.path)))

    def to_dict(self) -> dict[str, Any]:
        return {"type": "files", "files": [cursor.to_dict() for cursor in self.files]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FilesCursor:
        return cls(files=tuple(FileCursor.from_dict(item) for item in data.get("files", [])))


@attrs.frozen
class Checkpoint:
    """A source's cursor, the run that wrote it, and when."""

    source: str
    cursor: dict[str, Any]
    run_id: int
    updated_at: datetime
