"""gitopsd: a GitOps orchestrator for infrastructure deployed in layers."""

__version__ = "0.1.0"
