"""The transports: TF Serving's REST API (aiohttp) and gRPC services, translating their formats to the core's calls."""
