"""The long-running daemon: intake, queues and workers, reconciling heads, leadership, pruning."""
