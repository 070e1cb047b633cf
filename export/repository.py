"""Model-repository rules: `<base>/<name>/<integer version>/`, next version, atomic publish, pruning.

TF Serving loads every directory under a model's base path whose name is a non-negative integer, so a version
must only ever appear there complete. Everything is written into a hidden temporary directory inside the model's
directory (same filesystem, so the final `rename` is atomic) and renamed into place after validation.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

logger = logging.getLogger(__name__)

_VERSION_RE = re.compile(r"^(0|[1-9][0-9]*)$")
TEMP_PREFIX = ".tmp-export-"


class RepositoryError(Exception):
    """A model-repository rule was broken (existing version, bad name, bad version)."""


def parse_version(dirname: str) -> int | None:
    """Return the version number a directory name stands for, or None if TF Serving would ignore it."""
    if _VERSION_RE.match(dirname):
        return int(dirname)
    return None


def make_model_path(base_path: str | os.PathLike[str], name: str, version: int | None = None) -> Path:
    """`<base>/<name>` or `<base>/<name>/<version>`; refuses names that could escape the repository."""
    if not name or "/" in name or name.startswith(".") or "\\" in name:
        raise RepositoryError(f"invalid model name {name!r}: use a plain directory name")
    path = Path(base_path) / name
    if version is None:
        return path
    if version < 0:
        raise RepositoryError(f"invalid version {version}: versions are non-negative integers")
    return path / str(version)


def parse_model_path(path: str | os.PathLike[str]) -> tuple[Path, str, int]:
    """Split `<base>/<name>/<version>` into (base, name, version); raise if the last part is not a version."""
    p = Path(path)
    version = parse_version(p.name)
    if version is None:
        raise RepositoryError(f"{str(p)!r} does not end in an integer version directory")
    return p.parent.parent, p.parent.name, version


def list_versions(model_dir: str | os.PathLike[str]) -> list[int]:
    """Sorted integer versions present under a model directory (hidden and non-numeric entries ignored)."""
    d = Path(model_dir)
    if not d.is_dir():
        return []
    versions = [parse_version(e.name) for e in d.iterdir() if e.is_dir()]
    return sorted(v for v in versions if v is not None)


def next_version(existing: list[int]) -> int:
    """Highest existing version + 1, or 1 for an empty model directory."""
    return max(existing) + 1 if existing else 1


def resolve_version(model_dir: str | os.PathLike[str], requested: str | int) -> int:
    """Turn `auto` or an explicit integer into the version to publish; an existing version is refused."""
    existing = list_versions(model_dir)
    if str(requested) == "auto":
        return next_version(existing)
    try:
        version = int(requested)
    except ValueError as e:
        raise RepositoryError(f"invalid --version {requested!r}: use 'auto' or a non-negative integer") from e
    if version < 0:
        raise RepositoryError(f"invalid --version {requested!r}: use 'auto' or a non-negative integer")
    if version in existing:
        raise RepositoryError(
            f"version {version} already exists in {model_dir}; versions are never overwritten "
            f"(next free: {next_version(existing)})"
        )
    return version


@contextlib.contextmanager
def staging_dir(model_dir: str | os.PathLike[str]) -> Iterator[Path]:
    """A hidden temporary directory inside `model_dir`, removed on exit unless it was published."""
    d = Path(model_dir)
    d.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=d))
    try:
        yield tmp
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def publish(staged: Path, model_dir: str | os.PathLike[str], version: int) -> Path:
    """Atomically rename a fully written, validated staging directory to `<model_dir>/<version>`."""
    target = Path(model_dir) / str(version)
    if target.exists():
        raise RepositoryError(f"version {version} appeared in {model_dir} while exporting; nothing published")
    _fsync_tree(staged)
    os.rename(staged, target)
    _fsync_dir(Path(model_dir))
    logger.info("published %s", target)
    return target


def prune(model_dir: str | os.PathLike[str], keep: int) -> list[int]:
    """Delete the oldest versions beyond the newest `keep`; return the versions removed."""
    if keep < 1:
        raise RepositoryError(f"--keep must be at least 1, got {keep}")
    versions = list_versions(model_dir)
    doomed = versions[:-keep] if len(versions) > keep else []
    for v in doomed:
        # Rename out of sight first so TF Serving never sees a half-deleted version.
        src = Path(model_dir) / str(v)
        hidden = Path(model_dir) / f"{TEMP_PREFIX}prune-{v}"
        os.rename(src, hidden)
        shutil.rmtree(hidden, ignore_errors=True)
        logger.info("pruned version %d of %s", v, model_dir)
    return doomed


def clean_stale_staging(model_dir: str | os.PathLike[str]) -> list[str]:
    """Remove hidden staging directories left behind by a killed export."""
    d = Path(model_dir)
    removed = []
    if d.is_dir():
        for e in d.iterdir():
            if e.name.startswith(TEMP_PREFIX) and e.is_dir():
                shutil.rmtree(e, ignore_errors=True)
                removed.append(e.name)
    return removed


def _fsync_tree(root: Path) -> None:
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            with contextlib.suppress(OSError), open(os.path.join(dirpath, f), "rb") as fh:
                os.fsync(fh.fileno())


def _fsync_dir(d: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
