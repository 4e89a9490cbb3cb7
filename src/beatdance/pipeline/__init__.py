"""Stage 8: end-to-end jobs that chain the earlier stages (prepare, demo, bench)."""
