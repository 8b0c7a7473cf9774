"""Slack transport: Bolt listeners and Block Kit builders. Logic lives in ``bot``."""
