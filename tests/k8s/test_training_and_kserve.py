"""k8s/training (the multi-worker Indexed Job) and k8s/overlays/kserve (the InferenceService), rendered with
`kubectl kustomize` and validated offline: Kubernetes schemas, KServe's CRD schema, each worker's TF_CONFIG."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from export.training.distribution import read_tf_config
from tests.k8s.test_manifests import by_kind, dockerfile_cmd, render, validate_with_kubernetes_schemas

ROOT = Path(__file__).resolve().parents[2]
KSERVE_SCHEMA = Path(__file__).parent / "schemas" / "kserve-inferenceservice-v1beta1.json"


def job_env(job: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}


def worker_tf_config(script: str, env: dict[str, str], index: int, tmp_path: Path) -> str:
    """Run the Job's entry point as the pod with completion index `index` would, printing the TF_CONFIG it exports."""
    path = tmp_path / "train.sh"
    path.write_text(script)
    out = subprocess.run(["/bin/sh", str(path), sys.executable, "-c", "import os; print(os.environ['TF_CONFIG'])"],
                         env={"PATH": os.environ["PATH"], **env, "JOB_COMPLETION_INDEX": str(index)},
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_training_renders_and_validates_against_kubernetes_schemas(tmp_path):
    docs = render("training")
    assert sorted(d["kind"] for d in docs) == ["ConfigMap", "Job", "NetworkPolicy", "Service"]
    validate_with_kubernetes_schemas(docs, tmp_path)


def test_each_worker_gets_its_own_tf_config_naming_every_worker(tmp_path):
    docs = render("training")
    job, service = by_kind(docs, "Job"), by_kind(docs, "Service")
    env = job_env(job)
    workers = int(env["WORKERS"])
    assert workers == job["spec"]["completions"] == job["spec"]["parallelism"] >= 2
    script = by_kind(docs, "ConfigMap")["data"]["train.sh"]
    expected = [f"{job['metadata']['name']}-{i}.{service['metadata']['name']}:{env['PORT']}" for i in range(workers)]
    tasks = [read_tf_config({"TF_CONFIG": worker_tf_config(script, env, i, tmp_path)}) for i in range(workers)]
    for i, task in enumerate(tasks):
        assert task.workers == tuple(expected) and task.task_type == "worker" and task.task_index == i
        assert task.is_chief == (i == 0)
    # the names TF_CONFIG lists are the pods' DNS names: hostname <job>-<index> under the headless Service
    spec = job["spec"]["template"]["spec"]
    assert spec["subdomain"] == service["metadata"]["name"] and service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert {p["containerPort"] for p in spec["containers"][0]["ports"]} == {int(env["PORT"])}


def test_the_entry_point_refuses_to_run_without_its_index(tmp_path):
    docs = render("training")
    path = tmp_path / "train.sh"
    path.write_text(by_kind(docs, "ConfigMap")["data"]["train.sh"])
    out = subprocess.run(["/bin/sh", str(path), "true"], env={"PATH": os.environ["PATH"], **job_env(
        by_kind(docs, "Job"))}, capture_output=True, text=True)
    assert out.returncode != 0 and "JOB_COMPLETION_INDEX" in out.stderr


def test_the_job_publishes_onto_the_volume_the_pvc_overlay_serves_and_runs_deliberately():
    job = by_kind(render("training"), "Job")
    spec, pod = job["spec"], job["spec"]["template"]["spec"]
    assert spec["completionMode"] == "Indexed" and pod["restartPolicy"] == "OnFailure"
    assert 0 < spec["backoffLimit"] <= 10 and spec["activeDeadlineSeconds"] > 0 and spec["ttlSecondsAfterFinished"] > 0
    pvc = by_kind(render("overlays/pvc"), "PersistentVolumeClaim")
    assert "ReadWriteMany" in pvc["spec"]["accessModes"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["models"]["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    container = pod["containers"][0]
    args = container["args"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert f"--model-base-path={mounts['models']}" in args and f"--cache-dir={mounts['cache']}" in args
    assert "emptyDir" in volumes["cache"]  # survives a container restart in place: the epoch checkpoints resume
    assert pod["securityContext"]["runAsNonRoot"] and container["securityContext"]["readOnlyRootFilesystem"]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]["memory"]
    # the image of Dockerfile.train runs the project's export command through the entry point
    assert container["command"][-1].endswith("train.sh") and args[:3] == ["python", "-m", "export"]
    assert (ROOT / "Dockerfile.train").exists()


def strict(schema: dict) -> dict:
    """A CRD schema as JSON Schema, refusing unknown fields (Kubernetes prunes them silently; a typo would vanish)."""
    out = {k: v for k, v in schema.items() if not k.startswith("x-kubernetes") and k not in ("x-source", "nullable")}
    if schema.get("x-kubernetes-int-or-string"):
        out = {"anyOf": [{"type": "integer"}, {"type": "string"}]}
    if "properties" in schema:
        out["properties"] = {k: strict(v) for k, v in schema["properties"].items()}
        if not schema.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            out[key] = strict(schema[key])
    return out


def test_kserve_overlay_renders_an_inference_service_valid_against_kserves_crd(tmp_path):
    import jsonschema

    docs = render("overlays/kserve")
    assert sorted(d["kind"] for d in docs) == ["InferenceService", "Namespace"]
    validate_with_kubernetes_schemas(docs, tmp_path)
    isvc = by_kind(docs, "InferenceService")
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"
    schema = strict(json.loads(KSERVE_SCHEMA.read_text()))
    body = {k: v for k, v in isvc.items() if k != "metadata"}  # ObjectMeta: a core type, checked above
    try:
        jsonschema.validate(body, {**schema, "properties": {k: v for k, v in schema["properties"].items()
                                                            if k != "metadata"}})
    except jsonschema.ValidationError as e:
        pytest.fail(f"{e.message} at {'.'.join(map(str, e.absolute_path))} — a field the schema cut does not "
                    "know: regenerate it from KServe's CRD with tests/k8s/schemas/prune_crd.py if it is valid")


def test_kserve_predictor_is_the_deployments_server_with_its_flags_probe_and_image():
    isvc = by_kind(render("overlays/kserve"), "InferenceService")
    predictor = isvc["spec"]["predictor"]
    (container,) = predictor["containers"]
    assert container["args"] == dockerfile_cmd()
    deployment = by_kind(render("overlays/prod"), "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == deployment["image"]
    assert container["readinessProbe"]["exec"] == deployment["readinessProbe"]["exec"]
    assert [p["containerPort"] for p in container["ports"]] == [8501]  # REST: TF Serving's V1 paths
    assert 0 <= predictor["canaryTrafficPercent"] <= 100
    assert predictor["securityContext"]["runAsNonRoot"] and predictor["minReplicas"] >= 1
