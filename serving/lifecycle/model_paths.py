"""How TF Serving reads a model's base path: which entries are versions, and which one serves by default.

file_system_storage_path_source.cc parses every entry name under a base path with `absl::SimpleAtoi` into an int64:
`00000123` is version 123, `v1` and hidden staging directories are ignored. The exporter publishes by these rules and
the local server loads by them; this module is their one definition.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

logger = logging.getLogger(__name__)

_SIMPLE_ATOI_RE = re.compile(r"[+-]?[0-9]+")
_ASCII_WHITESPACE = " \t\n\v\f\r"  # what absl::SimpleAtoi strips around the number
_INT64 = (-(2**63), 2**63 - 1)


def parse_version(dirname: str) -> int | None:
    """The version number TF Serving reads from a directory name (absl::SimpleAtoi into int64: optional
    surrounding ASCII whitespace, optional sign, decimal digits, leading zeros allowed), or None if it ignores it."""
    text = dirname.strip(_ASCII_WHITESPACE)
    if not _SIMPLE_ATOI_RE.fullmatch(text):
        return None
    value = int(text)
    return value if _INT64[0] <= value <= _INT64[1] else None


def version_dirs(model_dir: str | os.PathLike[str]) -> dict[int, Path]:
    """Every version under a model directory with the entry it is loaded from. Files count too, as in TF Serving
    (a stray file named `3` is a version 3 that fails to load). Two spellings of one number (`7` and `007`): the
    later in sorted order is loaded, with TF Serving's warning."""
    d = Path(model_dir)
    if not d.is_dir():
        return {}
    found: dict[int, Path] = {}
    for entry in sorted(d.iterdir()):
        version = parse_version(entry.name)
        if version is None:
            continue
        if version in found:
            logger.warning("Duplicate version directories detected. Version %d will be loaded from %s, %s will be "
                           "ignored.", version, entry.name, found[version].name)
        found[version] = entry
    return found


def newest_version_path(path: str | os.PathLike[str]) -> Path:
    """A model directory's newest version (the one TF Serving's default policy serves); any other path unchanged."""
    versions = version_dirs(path)
    return versions[max(versions)] if versions else Path(path)


def list_versions(model_dir: str | os.PathLike[str]) -> list[int]:
    """Sorted versions present under a model directory, as TF Serving reads them (others ignored)."""
    return sorted(version_dirs(model_dir))
