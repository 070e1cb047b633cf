"""TF Serving's rules for Classify and Regress signatures (classifier.cc, regressor.cc), transport-free.

A Classify/Regress request carries tf.Examples; they are serialized into one string tensor fed to the signature's
`inputs` tensor. Which signatures qualify, and how their outputs become results, follows TF Serving: with
`--enable_signature_method_name_check` the method name must be the API's; the structure (one `inputs` input;
`classes` and/or `scores`, or one `outputs`) and the output tensors' dtypes and shapes are always checked, with
TF Serving's messages.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from google.protobuf import text_format
from tensorflow.core.framework import types_pb2

from serving.errors import FailedPrecondition, InvalidArgument
from serving.lifecycle.servable import DEFAULT_SIGNATURE, Servable, Signature

CLASSIFY_METHOD = tf.saved_model.CLASSIFY_METHOD_NAME
REGRESS_METHOD = tf.saved_model.REGRESS_METHOD_NAME
PREDICT_METHOD = tf.saved_model.PREDICT_METHOD_NAME
INPUTS = tf.saved_model.CLASSIFY_INPUTS  # == REGRESS_INPUTS
CLASSES = tf.saved_model.CLASSIFY_OUTPUT_CLASSES
SCORES = tf.saved_model.CLASSIFY_OUTPUT_SCORES
OUTPUTS = tf.saved_model.REGRESS_OUTPUTS


def _debug_string(servable: Servable, signature: Signature) -> str:
    return text_format.MessageToString(servable.signature_defs[signature.name])


def lookup(servable: Servable, signature_name: str, missing_message: str) -> Signature:
    """The named signature (serving_default when empty); INVALID_ARGUMENT as the Classify/Regress/MultiInference
    APIs answer (Predict answers FAILED_PRECONDITION instead)."""
    key = signature_name or DEFAULT_SIGNATURE
    signature = servable.signatures.get(key)
    if signature is None:
        raise InvalidArgument(f"{missing_message}{key}")
    return signature


def _check_method_and_input_count(signature: Signature, method_check: bool, method: str, kind: str) -> None:
    if method_check and signature.method_name != method:
        raise InvalidArgument(f"Expected {kind} signature method_name to be {method}. Was: {signature.method_name}")
    if len(signature.inputs) != 1:
        raise InvalidArgument("Expected one input Tensor.")


def check_classification(servable: Servable, signature: Signature, method_check: bool) -> list[str]:
    """PreProcessClassification: the output aliases to fetch (classes before scores)."""
    _check_method_and_input_count(signature, method_check, CLASSIFY_METHOD, "classification")
    if len(signature.outputs) not in (1, 2):
        raise InvalidArgument(f"Expected one or two output Tensors, found {len(signature.outputs)}")
    if INPUTS not in signature.inputs:
        raise InvalidArgument(f"No classification inputs found in SignatureDef: {_debug_string(servable, signature)}")
    wanted = [alias for alias in (CLASSES, SCORES) if alias in signature.outputs]
    if not wanted:
        raise InvalidArgument(
            f'Expected classification signature outputs to contain at least one of "{CLASSES}" or "{SCORES}". '
            f"Signature was: {_debug_string(servable, signature)}")
    return wanted


def check_regression(servable: Servable, signature: Signature, method_check: bool) -> list[str]:
    """PreProcessRegression: the output alias to fetch."""
    _check_method_and_input_count(signature, method_check, REGRESS_METHOD, "regression")
    if len(signature.outputs) != 1:
        raise InvalidArgument("Expected one output Tensor.")
    if INPUTS not in signature.inputs:
        raise InvalidArgument(f"No regression inputs found in SignatureDef: {_debug_string(servable, signature)}")
    if OUTPUTS not in signature.outputs:
        raise InvalidArgument(f"No regression outputs found in SignatureDef: {_debug_string(servable, signature)}")
    return [OUTPUTS]


def _dt_name(arr: np.ndarray) -> str:
    if arr.dtype.kind in "OSU":
        return "DT_STRING"
    return types_pb2.DataType.Name(tf.dtypes.as_dtype(arr.dtype).as_datatype_enum)


def _shape(arr: np.ndarray) -> str:
    return "[" + ",".join(str(d) for d in arr.shape) + "]"


def classification_results(outputs: dict[str, np.ndarray], num_examples: int) -> list[list[tuple[str, float]]]:
    """PostProcessClassificationResult: per example, (label, score) per class ('' / 0.0 where absent)."""
    classes, scores = outputs.get(CLASSES), outputs.get(SCORES)
    for arr, name, dtype_ok, dtype in ((classes, "classes", "O", "DT_STRING"), (scores, "scores", "f", "DT_FLOAT")):
        if arr is None:
            continue
        if arr.ndim != 2:
            raise InvalidArgument(f"Expected Tensor shape: [batch_size num_classes] but got {_shape(arr)}")
        if arr.dtype.kind != dtype_ok or (dtype_ok == "f" and arr.dtype != np.float32):
            raise InvalidArgument(f"Expected {name} Tensor of {dtype}. Got: {_dt_name(arr)}")
        if arr.shape[0] != num_examples:
            raise InvalidArgument(f"Expected {name} output batch size of {num_examples}. Got: {arr.shape[0]}")
    if classes is not None and scores is not None and classes.shape[1] != scores.shape[1]:
        raise InvalidArgument(f"Tensors class and score should match in dim_size(1). Got {classes.shape[1]} vs. "
                              f"{scores.shape[1]}")
    num_classes = (classes if classes is not None else scores).shape[1]
    results = []
    for i in range(num_examples):
        row = []
        for c in range(num_classes):
            label = classes[i, c] if classes is not None else b""
            label = label.decode("utf-8", "replace") if isinstance(label, bytes) else str(label)
            row.append((label, float(scores[i, c]) if scores is not None else 0.0))
        results.append(row)
    return results


def regression_results(outputs: dict[str, np.ndarray], num_examples: int) -> list[float]:
    """PostProcessRegressionResult: one float per example."""
    values = outputs.get(OUTPUTS)
    if values is None:
        raise FailedPrecondition("No regression outputs found in SignatureDef")
    if not (values.ndim == 1 or (values.ndim == 2 and values.shape[1] == 1)):
        raise InvalidArgument(f"Expected output Tensor shape to be either [batch_size] or [batch_size, 1] but got "
                              f"{_shape(values)}")
    if values.shape[0] != num_examples:
        raise InvalidArgument(f"Input batch size did not match output batch size: {num_examples} vs. "
                              f"{values.shape[0]}")
    if values.dtype != np.float32:
        raise InvalidArgument(f"Expected output Tensor of DT_FLOAT.  Got: {_dt_name(values)}")
    return [float(v) for v in values.reshape(-1)]


def examples_tensor(examples: list[bytes]) -> np.ndarray:
    """The [N] string tensor of serialized examples (INVALID_ARGUMENT 'Input is empty.' for none)."""
    if not examples:
        raise InvalidArgument("Input is empty.")
    batch = np.empty(len(examples), dtype=object)
    batch[:] = examples
    return batch


# Per API method: (PreProcess… check giving the output aliases to fetch, PostProcess… turning outputs into results).
RULES = {
    CLASSIFY_METHOD: (check_classification, classification_results),
    REGRESS_METHOD: (check_regression, regression_results),
}
