"""The user's cache of things that are slow to build and the same for every run on this machine:
$XDG_CACHE_HOME/stock_platform (~/.cache/stock_platform). Everything in it can be deleted; it is
rebuilt on use. Writing it is best effort: a read-only home only makes runs slower."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "stock_platform"


def write_atomically(path: Path, data: bytes) -> bool:
    """Write `path` whole or not at all (concurrent runs may race to fill the same entry)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
            tmp.write(data)
        os.replace(tmp.name, path)
        return True
    except OSError:
        return False
