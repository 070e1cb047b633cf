"""Keeping TensorFlow's C++ start-up lines ("Could not find cuda drivers…", "failed call to cuInit…", CPU
feature notes) out of our commands' output.

Those lines come from absl logging before it is initialised, so `TF_CPP_MIN_LOG_LEVEL` alone cannot stop them:
they are written straight to file descriptor 2 while TensorFlow is imported. `quiet_tensorflow()` therefore sets
the level for later messages and imports TensorFlow once with descriptor 2 pointed at /dev/null. A user who asked
for TensorFlow's messages (`TF_CPP_MIN_LOG_LEVEL` 0 or 1, or `--verbose`) sees everything it prints; a level of 2
or 3 (also what a parent command such as the demo passes on to its children) is kept quiet.
"""

from __future__ import annotations

import os
import sys

LEVEL_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"


def quiet_tensorflow(verbose: bool = False) -> None:
    """Call from `main()` after parsing arguments and before anything imports TensorFlow. Errors raised by the
    import itself still reach the user: they are Python exceptions, raised after descriptor 2 is restored."""
    if verbose or os.environ.get(LEVEL_VARIABLE, "3") in ("0", "1"):
        return
    os.environ.setdefault(LEVEL_VARIABLE, "3")  # later C++ messages: fatal only (also inherited by child processes)
    import logging

    logging.getLogger("tensorflow").setLevel(logging.WARNING)  # its INFO lines ("Assets written to …") stay out
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow  # noqa: F401  (the import is the point)
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
