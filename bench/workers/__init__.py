"""Per-tool worker scripts of the tracking benchmark and their shared workload driver."""
