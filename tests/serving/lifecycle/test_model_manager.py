"""ModelManager in-process with a recording loader: version policies, swaps, failed loads and retries, labels."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from tensorflow_serving.config import model_server_config_pb2

from serving.errors import FailedPrecondition, InvalidArgument, NotFound
from serving.lifecycle.model_manager import AVAILABLE, END, LOADING, ManagerOptions, ModelManager


class RecordingLoader:
    """Loads `name@version` strings; versions listed in `broken` fail; `gate` holds loads until it is set."""

    def __init__(self, broken: tuple[int, ...] = ()):
        self.loaded: list[tuple[str, int]] = []
        self.broken = set(broken)
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()  # set when a load has started

    def __call__(self, name: str, version: int, path: Path) -> str:
        self.entered.set()
        self.gate.wait(30)
        self.loaded.append((name, version))
        if version in self.broken:
            raise ValueError(f"cannot read {path}")
        return f"{name}@{version}"


def config(base: Path, policy: str = "", labels: dict[str, int] | None = None, name: str = "m"):
    from google.protobuf import text_format

    label_text = "".join(f' version_labels {{ key: "{k}" value: {v} }}' for k, v in (labels or {}).items())
    return text_format.Parse(f'model_config_list {{ config {{ name: "{name}" base_path: "{base}" '
                             f'model_platform: "tensorflow" {policy}{label_text} }} }}',
                             model_server_config_pb2.ModelServerConfig())


def versions_on_disk(base: Path, *versions: int) -> Path:
    for v in versions:
        (base / str(v)).mkdir(parents=True, exist_ok=True)
    return base


def states(manager: ModelManager, name: str = "m") -> dict[int, str]:
    return {s.version: s.state for s in manager.status(name)}


def settle(manager: ModelManager) -> None:
    for worker in manager.reconcile():
        worker.join(30)


def test_the_default_policy_serves_only_the_newest_version(tmp_path):
    loader = RecordingLoader()
    manager = ModelManager(loader)
    manager.apply_config(config(versions_on_disk(tmp_path / "m", 1, 3, 2)))
    assert loader.loaded == [("m", 3)] and states(manager) == {3: AVAILABLE}
    assert manager.servable("m") == "m@3"


def test_latest_num_versions_serves_the_newest_n_and_rolls_forward(tmp_path):
    loader = RecordingLoader()
    manager = ModelManager(loader)
    base = versions_on_disk(tmp_path / "m", 1, 2, 3)
    manager.apply_config(config(base, "model_version_policy { latest { num_versions: 2 } }"))
    assert states(manager) == {2: AVAILABLE, 3: AVAILABLE}
    assert manager.servable("m", version=2) == "m@2" and manager.servable("m") == "m@3"
    with pytest.raises(NotFound, match=r"Specific\(m, 1\)"):
        manager.servable("m", version=1)
    versions_on_disk(base, 4)
    settle(manager)
    settle(manager)  # the new version's own worker unloads what it supersedes; a second pass changes nothing
    assert states(manager) == {2: END, 3: AVAILABLE, 4: AVAILABLE}


def test_all_and_specific_policies(tmp_path):
    base = versions_on_disk(tmp_path / "m", 1, 2, 5)
    every = ModelManager(RecordingLoader())
    every.apply_config(config(base, "model_version_policy { all {} }"))
    assert states(every) == {1: AVAILABLE, 2: AVAILABLE, 5: AVAILABLE}
    chosen = ModelManager(RecordingLoader())
    chosen.apply_config(config(base, "model_version_policy { specific { versions: 2 versions: 9 } }"))
    assert states(chosen) == {2: AVAILABLE}  # 9 is not on disk


def test_a_broken_new_version_never_replaces_the_serving_one(tmp_path):
    loader = RecordingLoader(broken=(2,))
    manager = ModelManager(loader, ManagerOptions(max_num_load_retries=1, load_retry_interval_s=0.01))
    base = versions_on_disk(tmp_path / "m", 1)
    manager.apply_config(config(base))
    versions_on_disk(base, 2)
    settle(manager)
    status = {s.version: s for s in manager.status("m")}
    assert status[1].state == AVAILABLE and status[2].state == END
    assert status[2].error_code == "INTERNAL"
    assert status[2].error_message == f"Loading servable: {{name: m version: 2}} failed: ValueError: cannot read " \
                                      f"{base / '2'}"
    assert loader.loaded.count(("m", 2)) == 2  # one retry
    assert manager.servable("m") == "m@1"
    settle(manager)
    assert loader.loaded.count(("m", 2)) == 2  # failed for good: not retried by later polls


def test_a_version_loading_is_reported_as_loading_and_serves_nothing_yet(tmp_path):
    loader = RecordingLoader()
    loader.gate.clear()
    manager = ModelManager(loader)
    base = versions_on_disk(tmp_path / "m", 1)
    worker = threading.Thread(target=manager.apply_config, args=(config(base),))
    worker.start()
    try:
        assert loader.entered.wait(30)
        assert states(manager) == {1: LOADING}
        with pytest.raises(NotFound, match=r"Latest\(m\)"):
            manager.servable("m")
    finally:
        loader.gate.set()
        worker.join(30)
    assert states(manager) == {1: AVAILABLE}


def test_labels_need_an_available_version_unless_allowed(tmp_path):
    base = versions_on_disk(tmp_path / "m", 1, 2)
    policy = "model_version_policy { all {} }"
    strict = ModelManager(RecordingLoader())
    with pytest.raises(FailedPrecondition, match="assign label to version 2 of model m, which is not currently"):
        strict.apply_config(config(base, policy, {"canary": 2}))
    assert strict.model_names() == []  # a refused config changes nothing
    strict.apply_config(config(base, policy))
    strict.apply_config(config(base, policy, {"stable": 1, "canary": 2}))
    assert strict.servable("m", label="canary") == "m@2" and strict.labels("m") == {"stable": 1, "canary": 2}
    with pytest.raises(InvalidArgument, match="Unrecognized servable version label: nope"):
        strict.servable("m", label="nope")
    allowed = ModelManager(RecordingLoader(), ManagerOptions(allow_version_labels_for_unavailable_models=True))
    allowed.apply_config(config(base, policy, {"canary": 2}))
    assert allowed.servable("m", label="canary") == "m@2"


def test_a_model_left_out_of_a_new_config_is_unloaded(tmp_path):
    manager = ModelManager(RecordingLoader())
    a, b = versions_on_disk(tmp_path / "a", 1), versions_on_disk(tmp_path / "b", 1)
    manager.apply_config(config(a, name="a"))
    manager.apply_config(config(b, name="b"))
    assert manager.model_names() == ["b"]
    with pytest.raises(NotFound, match="Could not find any versions of model a"):
        manager.status("a")
