"""Runs: the workspace and one lifecycle for plan, apply and destroy, step by step."""
