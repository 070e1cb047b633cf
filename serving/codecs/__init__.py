"""Codecs between wire formats and arrays: TensorProto and JSON tensors (transports, warmup and loader use them)."""
