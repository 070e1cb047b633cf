"""Cut a CustomResourceDefinition's schema down to the fields a manifest uses, for offline validation in the suite.

    python tests/k8s/schemas/prune_crd.py CRD.yaml VERSION MANIFEST.yaml [SOURCE] > tests/k8s/schemas/NAME.json

CRDs are large (KServe's InferenceService: 1.9 MB, mostly the pod spec); the suite keeps only the schema of each
field the manifest sets (type, enum, format, bounds, required lists, nested items), taken verbatim from the CRD. A
manifest field the CRD does not define stops this script; the test then validates strictly, so a field added to the
manifest later fails until the schema is cut again from the CRD.
"""

from __future__ import annotations

import json
import sys

import yaml

KEEP = ("type", "format", "enum", "required", "minimum", "maximum", "pattern", "maxLength", "minLength",
        "nullable", "x-kubernetes-int-or-string", "x-kubernetes-preserve-unknown-fields", "description")


def prune(schema: dict, value, path: str) -> dict:
    out = {k: schema[k] for k in KEEP if k in schema and k != "description"}
    if isinstance(value, dict) and "properties" in schema:
        unknown = sorted(set(value) - set(schema["properties"]))
        if unknown and not schema.get("x-kubernetes-preserve-unknown-fields"):
            raise SystemExit(f"{path}: {unknown} not in the CRD's schema (known: {sorted(schema['properties'])})")
        out["properties"] = {k: prune(schema["properties"][k], v, f"{path}.{k}") for k, v in value.items()
                             if k in schema["properties"]}
    elif isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        merged = {}
        for v in value.values():
            merged = _union(merged, prune(schema["additionalProperties"], v, f"{path}.*"))
        out["additionalProperties"] = merged or {k: schema["additionalProperties"][k]
                                                 for k in KEEP if k in schema["additionalProperties"]}
    elif isinstance(value, list) and "items" in schema:
        merged = {}
        for i, v in enumerate(value):
            merged = _union(merged, prune(schema["items"], v, f"{path}[{i}]"))
        out["items"] = merged
    return out


def _union(a: dict, b: dict) -> dict:
    """Two prunings of the same schema node: the properties of both."""
    if not a:
        return b
    out = {**a, **b}
    if "properties" in a or "properties" in b:
        props = dict(a.get("properties", {}))
        for k, v in b.get("properties", {}).items():
            props[k] = _union(props.get(k, {}), v)
        out["properties"] = props
    for key in ("items", "additionalProperties"):
        if isinstance(a.get(key), dict) and isinstance(b.get(key), dict):
            out[key] = _union(a[key], b[key])
    return out


def main(argv: list[str]) -> int:
    crd_path, version, manifest_path, *source = argv
    with open(crd_path) as f:
        crd = yaml.safe_load(f)
    (entry,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    with open(manifest_path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d and d.get("kind") == crd["spec"]["names"]["kind"]]
    schema = entry["schema"]["openAPIV3Schema"]
    merged: dict = {}
    for doc in docs:
        merged = _union(merged, prune(schema, doc, doc["kind"]))
    merged["x-source"] = (f"{crd['metadata']['name']} {version}{' from ' + source[0] if source else ''}, cut by "
                          "tests/k8s/schemas/prune_crd.py")
    print(json.dumps(merged, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
