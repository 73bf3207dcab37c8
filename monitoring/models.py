"""Models: see docs/schema.md."""
