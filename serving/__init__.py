"""A local model server speaking TensorFlow Serving's REST and gRPC protocols (`python -m serving`)."""
