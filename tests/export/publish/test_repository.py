import os
import stat
import time
from pathlib import Path

import pytest

from export.publish import repository as r


def test_make_and_parse_model_path_round_trip(tmp_path):
    p = r.make_model_path(tmp_path, "cifar10", 3)
    assert p == tmp_path / "cifar10" / "3"
    assert r.parse_model_path(p) == (tmp_path, "cifar10", 3)


@pytest.mark.parametrize("name", ["", "../x", "a/b", ".hidden"])
def test_make_model_path_refuses_unsafe_names(tmp_path, name):
    with pytest.raises(r.RepositoryError, match="invalid model name"):
        r.make_model_path(tmp_path, name)


def test_parse_model_path_refuses_non_version(tmp_path):
    with pytest.raises(r.RepositoryError, match="integer version"):
        r.parse_model_path(tmp_path / "m" / "latest")


def test_next_version_is_highest_plus_one():
    assert r.next_version([]) == 1
    assert r.next_version([1, 2, 10]) == 11


def test_resolve_version_auto_and_explicit(tmp_path):
    (tmp_path / "4").mkdir()
    assert r.resolve_version(tmp_path, "auto") == 5
    assert r.resolve_version(tmp_path, "9") == 9
    with pytest.raises(r.RepositoryError, match="already exists"):
        r.resolve_version(tmp_path, "4")
    with pytest.raises(r.RepositoryError, match="invalid --version 'x'"):
        r.resolve_version(tmp_path, "x")


def test_staging_dir_is_hidden_and_removed_on_error(tmp_path):
    seen: list[Path] = []
    with pytest.raises(RuntimeError), r.staging_dir(tmp_path / "m") as staged:
        seen.append(staged)
        assert staged.name.startswith(".")
        assert r.parse_version(staged.name) is None
        (staged / "saved_model.pb").write_bytes(b"partial")
        raise RuntimeError("killed mid-export")
    assert not seen[0].exists()
    assert r.list_versions(tmp_path / "m") == []


def test_publish_renames_into_place_and_never_overwrites(tmp_path):
    model_dir = tmp_path / "m"
    with r.staging_dir(model_dir) as staged:
        (staged / "saved_model.pb").write_bytes(b"x")
        target = r.publish(staged, model_dir, 1)
    assert (target / "saved_model.pb").read_bytes() == b"x"
    assert [p.name for p in model_dir.iterdir()] == ["1"]
    with r.staging_dir(model_dir) as staged, pytest.raises(r.RepositoryError, match="appeared"):
        r.publish(staged, model_dir, 1)


def test_published_version_is_readable_by_other_users_under_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        with r.staging_dir(tmp_path / "m") as staged:
            (staged / "saved_model.pb").write_bytes(b"x")
            target = r.publish(staged, tmp_path / "m", 1)
    finally:
        os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == 0o755  # was 0700 (mkdtemp's), unreadable for the serving user
    assert stat.S_IMODE((target / "saved_model.pb").stat().st_mode) == 0o644


def test_prune_keeps_newest(tmp_path):
    for v in (1, 2, 3, 5):
        (tmp_path / str(v)).mkdir()
    assert r.prune(tmp_path, 2) == [1, 2]
    assert r.list_versions(tmp_path) == [3, 5]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["3", "5"]
    with pytest.raises(r.RepositoryError):
        r.prune(tmp_path, 0)


def dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid  # reaped: no process has this pid now (reuse within the test is vanishingly unlikely)


def test_clean_stale_staging_removes_only_staging_of_dead_exports(tmp_path):
    (tmp_path / f".tmp-export-{dead_pid()}-abc").mkdir()  # its export was killed
    (tmp_path / f".tmp-export-{os.getpid()}-xyz").mkdir()  # a running export's: kept
    (tmp_path / ".tmp-export-prune-3").mkdir()  # no owner, recent: kept for an hour
    (tmp_path / "1").mkdir()
    removed = r.clean_stale_staging(tmp_path)
    assert len(removed) == 1 and removed[0].endswith("-abc")
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".tmp-export-{os.getpid()}-xyz", ".tmp-export-prune-3",
                                                          "1"]
    assert sorted(r.clean_stale_staging(tmp_path, now=time.time() + 2 * 86400)) == [
        f".tmp-export-{os.getpid()}-xyz", ".tmp-export-prune-3"]  # untouched for a day: stale whoever owns it


def test_concurrent_publishers_never_collide(tmp_path):
    """Two exporters staging at once: both publish, under distinct numbers, neither removes the other's work."""
    import threading

    model_dir = tmp_path / "m"
    results, errors = [], []

    def export(tag: str):
        try:
            with r.staging_dir(model_dir) as staged:
                (staged / "saved_model.pb").write_bytes(tag.encode())
                assert r.clean_stale_staging(model_dir) == []  # the other one's staging dir is alive
                with r.publish_lock(model_dir):
                    version = r.next_version(r.list_versions(model_dir))
                    time.sleep(0.05)  # widen the window a lock must close
                    results.append((tag, r.publish(staged, model_dir, version)))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=export, args=(t,)) for t in ("a", "b", "c")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(p.name for p in model_dir.iterdir() if not p.name.startswith(".")) == ["1", "2", "3"]
    assert sorted((path / "saved_model.pb").read_text() for _, path in results) == ["a", "b", "c"]


def test_auto_version_taken_meanwhile_is_renumbered_an_explicit_one_is_refused(tmp_path):
    from export.publish.gate import GatePolicy
    from export.publish.publishing import PublishSettings, _final_version

    (tmp_path / "m" / "3").mkdir(parents=True)  # a concurrent export published 3 after we planned it
    auto = PublishSettings(tmp_path, "m", 3, None, GatePolicy(), renumber=True)
    assert _final_version(tmp_path / "m", auto) == 4
    explicit = PublishSettings(tmp_path, "m", 3, None, GatePolicy())
    with pytest.raises(r.RepositoryError, match="version 3 appeared"):
        _final_version(tmp_path / "m", explicit)
