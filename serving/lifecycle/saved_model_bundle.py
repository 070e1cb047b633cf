"""Loading a SavedModel the way TF Serving's SavedModelBundle does, and running it by tensor name.

TF Serving (`LoadSavedModel` in TensorFlow's C++ loader) reads `saved_model.pb`, picks the MetaGraphDef whose tag
set equals the requested tags, imports its graph into a new Session, restores the variables from the checkpoint,
feeds the asset file paths and runs the init op (TF2 `saved_model_init_op`, TF1 `main_op` or `legacy_init_op`).
Signatures are then run with `Session::Run` on the SignatureDef's tensor names. TF2's `tf.saved_model.load` is a
different path (object graph, eager functions) and accepts models that this path refuses, so it is not used here.

The errors raised for a missing or unreadable SavedModel carry the C++ loader's codes and messages.
"""

from __future__ import annotations

import functools
import importlib
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf
from google.protobuf import message as pb_message
from tensorflow.core.protobuf import config_pb2, meta_graph_pb2, saved_model_pb2

from serving.errors import DataLoss, InvalidArgument, NotFound, ServingError, error_for_code

logger = logging.getLogger(__name__)

SAVED_MODEL_PB = "saved_model.pb"
SAVED_MODEL_PBTXT = "saved_model.pbtxt"


@dataclass(frozen=True)
class SessionOptions:
    """Session settings from the server flags (0 lets TensorFlow choose, as in TF Serving)."""

    intra_op_parallelism: int = 0
    inter_op_parallelism: int = 0

    def config_proto(self) -> config_pb2.ConfigProto:
        """The ConfigProto a bundle's Session is created with."""
        return config_pb2.ConfigProto(
            intra_op_parallelism_threads=self.intra_op_parallelism,
            inter_op_parallelism_threads=self.inter_op_parallelism,
            allow_soft_placement=True,
        )


# Op libraries the tensorflow/serving image links into tensorflow_model_server, so models using their ops serve
# there: registered here before any graph is imported (importing the package registers its ops with TensorFlow).
LINKED_OP_PACKAGES = ("tensorflow_text",)


@functools.cache
def register_linked_ops() -> tuple[str, ...]:
    """Import the installed op libraries of LINKED_OP_PACKAGES (once per process); returns those registered."""
    registered = []
    for package in LINKED_OP_PACKAGES:
        try:
            importlib.import_module(package)
        except ImportError as e:  # a model using its ops then fails with TensorFlow's "Op type not registered"
            logger.warning("%s is not importable (%s): models using its ops will not load", package, e)
            continue
        registered.append(package)
    return tuple(registered)


def read_saved_model(export_dir: Path) -> saved_model_pb2.SavedModel:
    """`saved_model.pb` (or `.pbtxt`) of `export_dir`, failing with TensorFlow's loader messages."""
    from google.protobuf import text_format

    pb, pbtxt = export_dir / SAVED_MODEL_PB, export_dir / SAVED_MODEL_PBTXT
    saved = saved_model_pb2.SavedModel()
    if pb.is_file():
        try:
            saved.ParseFromString(pb.read_bytes())
        except (pb_message.DecodeError, RuntimeError) as e:
            raise DataLoss(f"Can't parse {pb} as binary proto") from e
        return saved
    if pbtxt.is_file():
        try:
            text_format.Parse(pbtxt.read_text(), saved)
        except (text_format.ParseError, UnicodeDecodeError) as e:
            raise DataLoss(f"Can't parse {pbtxt} as text proto") from e
        return saved
    raise NotFound(
        f"Could not find SavedModel .pb or .pbtxt at supplied export directory path: {export_dir}. Check that the "
        f"directory exists and that you have the right permissions for accessing it."
    )


def find_meta_graph(saved: saved_model_pb2.SavedModel, tags: tuple[str, ...]) -> meta_graph_pb2.MetaGraphDef:
    """The MetaGraphDef whose tag set equals `tags` (NOT_FOUND with the loader's message otherwise)."""
    wanted = set(tags)
    for meta_graph in saved.meta_graphs:
        if set(meta_graph.meta_info_def.tags) == wanted:
            return meta_graph
    raise NotFound(
        f"Could not find meta graph def matching supplied tags: {{ {' '.join(tags)} }}. To inspect available "
        f"tag-sets in the SavedModel, please use the SavedModel CLI: `saved_model_cli`"
    )


def translate_tf_error(e: tf.errors.OpError) -> ServingError:
    """A TensorFlow runtime error as the ServingError with the same canonical code and message."""
    from tensorflow.core.protobuf import error_codes_pb2

    code = error_codes_pb2.Code.Name(e.error_code) if e.error_code in error_codes_pb2.Code.values() else "UNKNOWN"
    err = error_for_code(code, e.message.strip())
    err.__cause__ = e
    return err


class SessionBundle:
    """A MetaGraphDef imported into its own Graph and Session, restored and initialised, with cached callables."""

    def __init__(self, export_dir: Path, tags: tuple[str, ...] = ("serve",),
                 options: SessionOptions = SessionOptions()):
        self.export_dir = Path(export_dir)
        self.tags = tuple(tags)
        self.meta_graph_def = find_meta_graph(read_saved_model(self.export_dir), self.tags)
        register_linked_ops()
        self.graph = tf.Graph()
        self.session = tf.compat.v1.Session(graph=self.graph, config=options.config_proto())
        self._callables: dict[tuple[tuple[str, ...], tuple[str, ...]], object] = {}
        self._lock = threading.Lock()
        tf_logger = logging.getLogger("tensorflow")
        level = tf_logger.level
        tf_logger.setLevel(logging.ERROR)  # the v1 loader's deprecation notice: this *is* the path we want
        try:
            with self.graph.as_default():
                # Restores variables, feeds asset paths and runs the init/main/legacy_init op, as LoadSavedModel.
                tf.compat.v1.saved_model.loader.load(self.session, list(self.tags), str(self.export_dir))
        except tf.errors.OpError as e:
            self.close()
            raise translate_tf_error(e) from e
        except (OSError, ValueError, RuntimeError, KeyError) as e:
            self.close()
            raise error_for_code("INVALID_ARGUMENT", f"Failed to load SavedModel from {self.export_dir}: {e}") from e
        finally:
            tf_logger.setLevel(level)
        self.graph.finalize()  # nothing may add ops once serving starts (TF Serving's graph is immutable too)

    @property
    def signature_defs(self) -> dict[str, meta_graph_pb2.SignatureDef]:
        """The MetaGraphDef's signature map."""
        return dict(self.meta_graph_def.signature_def)

    def _callable(self, feeds: tuple[str, ...], fetches: tuple[str, ...]):
        key = (feeds, fetches)
        fn = self._callables.get(key)
        if fn is None:
            with self._lock:
                fn = self._callables.get(key)
                if fn is None:
                    options = config_pb2.CallableOptions(feed=list(feeds), fetch=list(fetches))
                    try:
                        # Session::MakeCallable: the feeds and fetches are pruned and compiled once, then each call
                        # is one Session::RunCallable with no Python-side feed handling.
                        fn = self.session._make_callable_from_options(options)
                    except tf.errors.OpError as e:
                        raise translate_tf_error(e) from e
                    self._callables[key] = fn
        return fn

    def run(self, feeds: dict[str, np.ndarray], fetches: tuple[str, ...]) -> list[np.ndarray]:
        """`Session::Run` with tensors fed and fetched by name; errors keep TensorFlow's code and message."""
        names = tuple(sorted(feeds))
        fn = self._callable(names, tuple(fetches))
        try:
            return fn(*(feeds[n] for n in names))
        except tf.errors.OpError as e:
            raise translate_tf_error(e) from e
        except UnicodeDecodeError as e:
            # TensorFlow's Python binding decodes an op's error message as UTF-8; a message quoting the request's
            # own bytes (ParseExample's "Could not parse example input, value: '…'") fails to decode and loses its
            # status. Such messages come from the op's input checks: INVALID_ARGUMENT, the message kept readable.
            raise InvalidArgument(e.object.decode("utf-8", "backslashreplace")) from e

    def close(self) -> None:
        """Release the session (its variables and callables)."""
        with self._lock:
            self._callables.clear()
        self.session.close()
