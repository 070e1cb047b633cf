"""Clients for the served image classifiers: `GrpcClient`, `RestClient` (same API), preprocessing, decoding."""
