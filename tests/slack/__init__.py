"""Slack-facing tests: the fake Slack, signed payloads, Block Kit builders, the manifest."""
