"""TensorFlow's C++ start-up lines stay out of our commands' output unless the user asks for them."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOISE = ("cuda", "cuInit", "cpu_feature_guard", "absl::InitializeLog")


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**base, **env})


def test_quiet_import_prints_nothing_and_tensorflow_still_works():
    out = run_python("from serving.tf_logging import quiet_tensorflow\nquiet_tensorflow()\n"
                     "import os, tensorflow as tf\n"
                     "with tf.compat.v1.Session() as s: print(s.run(tf.constant(41) + 1))\n"
                     "print(os.environ['TF_CPP_MIN_LOG_LEVEL'])")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["42", "3"]
    assert not [line for line in out.stderr.splitlines() if any(n in line for n in NOISE)], out.stderr


def test_a_level_the_user_set_and_verbose_are_left_alone():
    out = run_python("import os, sys\nfrom serving.tf_logging import quiet_tensorflow\nquiet_tensorflow()\n"
                     "print(os.environ['TF_CPP_MIN_LOG_LEVEL'], 'tensorflow' in sys.modules)",
                     TF_CPP_MIN_LOG_LEVEL="1")
    assert out.stdout.split() == ["1", "False"]
    out = run_python("import os, sys\nfrom serving.tf_logging import quiet_tensorflow\nquiet_tensorflow(verbose=True)\n"
                     "print(os.environ.get('TF_CPP_MIN_LOG_LEVEL'), 'tensorflow' in sys.modules)")
    assert out.stdout.split() == ["None", "False"]


def test_a_quiet_level_passed_on_by_a_parent_command_still_keeps_the_start_up_lines_out():
    # `make demo` quiets itself, then runs `python -m export` with TF_CPP_MIN_LOG_LEVEL=3 in its environment.
    out = run_python("import sys\nfrom serving.tf_logging import quiet_tensorflow\nquiet_tensorflow()\n"
                     "print('tensorflow' in sys.modules)", TF_CPP_MIN_LOG_LEVEL="3")
    assert out.stdout.split() == ["True"]
    assert not [line for line in out.stderr.splitlines() if any(n in line for n in NOISE)], out.stderr
