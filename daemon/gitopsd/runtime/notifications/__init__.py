"""Notifications: the outbox and its deliveries (webhooks, GitHub commit statuses)."""
