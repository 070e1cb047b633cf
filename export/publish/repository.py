"""Publishing into the model repository: `<base>/<name>/<integer version>/`, next version, atomic publish, pruning.

How TF Serving reads version directories is defined once in `serving.lifecycle.model_paths`; a version must only
ever appear there complete. This exporter writes canonical names (`123`) and never reuses a number, whatever its
spelling on disk.
Everything is written into a hidden temporary directory inside the model's
directory (same filesystem, so the final `rename` is atomic) and renamed into place after validation.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

# TF Serving's version-directory rules, defined in serving (list_versions is also this module's public helper).
from serving.lifecycle.model_paths import list_versions, parse_version, version_dirs

logger = logging.getLogger(__name__)

TEMP_PREFIX = ".tmp-export-"
STALE_AFTER_S = 24 * 3600  # a staging directory untouched this long belongs to no running export
ORPHAN_AFTER_S = 3600  # a hidden directory without an owner pid (an interrupted prune) is removed after this


class RepositoryError(Exception):
    """A model-repository rule was broken (existing version, bad name, bad version)."""


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
    tmp = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-", dir=d))  # the owner's pid: see below
    try:
        yield tmp
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def publish(staged: Path, model_dir: str | os.PathLike[str], version: int) -> Path:
    """Atomically rename a fully written, validated staging directory to `<model_dir>/<version>`."""
    target = Path(model_dir) / str(version)
    if target.exists() or version in version_dirs(model_dir):
        raise RepositoryError(f"version {version} appeared in {model_dir} while exporting; nothing published")
    _fsync_tree(staged)
    # mkdtemp made the staging directory 0700; a published version must be readable by the serving user (the image
    # runs as UID 10001, a PVC may be mounted by another user): give it the mode a plain mkdir would get under the
    # current umask (0755 with the usual 022), as everything TensorFlow wrote inside already has.
    os.chmod(staged, 0o777 & ~_current_umask())
    os.rename(staged, target)
    _fsync_dir(Path(model_dir))
    logger.info("published %s", target)
    return target


def prune(model_dir: str | os.PathLike[str], keep: int) -> list[int]:
    """Delete the oldest versions beyond the newest `keep`; return the versions removed."""
    if keep < 1:
        raise RepositoryError(f"--keep must be at least 1, got {keep}")
    entries = version_dirs(model_dir)
    versions = sorted(entries)
    doomed = versions[:-keep] if len(versions) > keep else []
    for v in doomed:
        # Rename out of sight first so TF Serving never sees a half-deleted version.
        src = entries[v]
        hidden = Path(model_dir) / f"{TEMP_PREFIX}prune-{v}"
        os.rename(src, hidden)
        if hidden.is_dir():
            shutil.rmtree(hidden, ignore_errors=True)
        else:
            hidden.unlink(missing_ok=True)
        logger.info("pruned version %d of %s", v, model_dir)
    return doomed


def clean_stale_staging(model_dir: str | os.PathLike[str], now: float | None = None) -> list[str]:
    """Remove hidden staging directories left behind by a killed export, never a running export's: a directory
    named after its owner's pid (`.tmp-export-<pid>-…`) is stale when that process no longer exists, any other
    (older name, a prune interrupted halfway) or one on a shared volume of another host after STALE_AFTER_S."""
    d = Path(model_dir)
    removed = []
    if not d.is_dir():
        return removed
    now = time.time() if now is None else now
    for e in d.iterdir():
        if not e.name.startswith(TEMP_PREFIX) or not e.is_dir():
            continue
        owner = e.name[len(TEMP_PREFIX):].split("-", 1)[0]
        age = now - e.stat().st_mtime
        limit = STALE_AFTER_S if owner.isdigit() else ORPHAN_AFTER_S
        if age > limit or (owner.isdigit() and not _process_exists(int(owner))):
            shutil.rmtree(e, ignore_errors=True)
            removed.append(e.name)
    return removed


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


@contextlib.contextmanager
def publish_lock(model_dir: str | os.PathLike[str]) -> Iterator[None]:
    """An exclusive lock on `<model_dir>/.publish.lock` (flock; hidden, so TF Serving ignores it): concurrent
    exporters of one model check, number and rename their versions one at a time."""
    import fcntl

    d = Path(model_dir)
    d.mkdir(parents=True, exist_ok=True)
    with open(d / ".publish.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


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
