"""Edges to the outside world (git, processes, storage), each wrapping one library."""
