"""Small file helpers shared by the stages: atomic writes and content hashes."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

CHUNK = 1 << 20


def write_json(path: Path, data: Any) -> None:
    """Atomic JSON write (temp file + rename): a killed stage never leaves half a file."""
    write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # what open() gives a new file (the temporary file alone would be 0600)


def write_text(path: Path, text: str) -> None:
    """Atomic text write (temp file + rename), with the permissions of a file written by open()."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False, encoding="utf-8") as fh:
        fh.write(text)
        tmp = Path(fh.name)
    tmp.chmod(_FILE_MODE)
    tmp.replace(path)


def read_json(path: Path, what: str = "file") -> Any:
    """Read JSON, naming the file in the error when it is missing or malformed."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        msg = f"{path}: {what} not found"
        raise FileNotFoundError(msg) from None
    except json.JSONDecodeError as exc:
        msg = f"{path}: not valid JSON ({exc})"
        raise ValueError(msg) from None


def sha256_file(path: Path) -> str:
    """SHA-256 hex digest of a file."""
    return sha256_and_size(path)[0]


def sha256_and_size(path: Path) -> tuple[str, int]:
    """SHA-256 hex digest and size in bytes of a file, both from the same read (1 MiB chunks)."""
    digest = hashlib.sha256()
    size = 0
    with Path(path).open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def sha256_json(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()
