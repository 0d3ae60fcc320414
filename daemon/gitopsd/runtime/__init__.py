"""Wiring of adapters and engine into the operations the CLI and the daemon run."""
