"""Promotion: admitting work to an environment, promoting, suspending, saved plans, diffs."""
