"""One module per exporter command: load → split → build → fit → evaluate → gate → publish."""
