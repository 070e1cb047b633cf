"""k8s/overlays/canary-pods: the stable and canary tracks in their own pods, as clients.canary needs them."""

from __future__ import annotations

from pathlib import Path

from serving.lifecycle.config_files import load_model_server_config
from tests.k8s.test_manifests import render

ROOT = Path(__file__).resolve().parents[2]
OVERLAY = ROOT / "k8s" / "overlays" / "canary-pods"


def cifar10_versions(path: Path) -> list[int]:
    (entry,) = [c for c in load_model_server_config(path).model_config_list.config if c.name == "cifar10"]
    return list(entry.model_version_policy.specific.versions)


def test_two_tracks_in_their_own_pods_behind_one_service_labelled_for_prometheus():
    docs = render("overlays/canary-pods")
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    assert set(deployments) == {"tfserving", "tfserving-canary"}
    tracks = {name: d["spec"]["template"]["metadata"]["labels"]["track"] for name, d in deployments.items()}
    assert tracks == {"tfserving": "stable", "tfserving-canary": "canary"}
    for d in deployments.values():  # each Deployment owns only its own track's pods
        assert d["spec"]["selector"]["matchLabels"]["track"] == d["spec"]["template"]["metadata"]["labels"]["track"]
    (service,) = [d for d in docs if d["kind"] == "Service"]
    for d in deployments.values():  # the Service sends traffic to both
        assert service["spec"]["selector"].items() <= d["spec"]["template"]["metadata"]["labels"].items()
    (monitor,) = [d for d in docs if d["kind"] == "ServiceMonitor"]
    assert monitor["spec"]["podTargetLabels"] == ["track"]
    assert deployments["tfserving"]["spec"]["replicas"] > deployments["tfserving-canary"]["spec"]["replicas"] == 1


def test_each_track_mounts_its_own_model_config_and_they_differ_in_the_cifar10_version():
    docs = render("overlays/canary-pods")
    configs = {d["metadata"]["name"]: d["data"]["models.config"] for d in docs if d["kind"] == "ConfigMap"
               and "models.config" in d["data"]}
    assert configs["tfserving-config"] == (OVERLAY / "stable" / "models.config").read_text()
    assert configs["tfserving-config-canary"] == (OVERLAY / "canary" / "models.config").read_text()
    volumes = {d["metadata"]["name"]: {v["name"]: v for v in d["spec"]["template"]["spec"]["volumes"]}
               for d in docs if d["kind"] == "Deployment"}
    assert volumes["tfserving-canary"]["config"]["configMap"]["name"] == "tfserving-config-canary"
    assert volumes["tfserving"]["config"]["configMap"]["name"] == "tfserving-config"
    assert cifar10_versions(OVERLAY / "stable" / "models.config") == [1]
    assert cifar10_versions(OVERLAY / "canary" / "models.config") == [2]
