"""The transport-free core: one async entry point per API, runners (direct, batching), errors and metrics."""
