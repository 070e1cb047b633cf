"""Compare the JSON lines of `python -m clients predict --json` from two servers, in pairs of files:

    python .github/scripts/compare_answers.py A.json B.json [C.json D.json ...]

The same images must get the same top-k labels, in the same order, with scores within 1e-5 (REST carries floats
as JSON text). Exits 1 naming the first difference."""

from __future__ import annotations

import json
import sys


def answers(path: str) -> dict[str, list[dict]]:
    with open(path) as f:
        return {row["image"].rsplit("/", 1)[-1]: row["top"] for row in map(json.loads, filter(str.strip, f))}


def main(paths: list[str]) -> int:
    if not paths or len(paths) % 2:
        print(__doc__, file=sys.stderr)
        return 2
    for a_path, b_path in zip(paths[::2], paths[1::2], strict=True):
        a, b = answers(a_path), answers(b_path)
        if not a or a.keys() != b.keys():
            print(f"{a_path} and {b_path} answer different images: {sorted(a)} / {sorted(b)}")
            return 1
        for image in sorted(a):
            labels_a = [t["label"] for t in a[image]]
            labels_b = [t["label"] for t in b[image]]
            worst = max(abs(x["score"] - y["score"]) for x, y in zip(a[image], b[image], strict=False))
            if labels_a != labels_b or worst > 1e-5:  # (equal labels: equal lengths)
                print(f"{image}: {a_path} says {a[image]}, {b_path} says {b[image]}")
                return 1
        print(f"{a_path} = {b_path}: {len(a)} images, same top-k labels and scores")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
