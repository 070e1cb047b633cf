"""Clients for the served image classifiers: `GrpcClient`, `RestClient` (same API), preprocessing, decoding."""

import os

# tensorflow-serving-api's protos import TensorFlow; keep its C++ start-up chatter out of client output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
