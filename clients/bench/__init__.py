"""Benchmarks and soak tools for the servers (`python -m clients.bench`, `clients.bench.<tool>`); not the library."""
