"""The `gitopsd` command line."""
