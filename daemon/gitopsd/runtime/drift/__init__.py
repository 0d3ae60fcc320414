"""Drift: checking deployed components against the revision they were applied from, and reports."""
