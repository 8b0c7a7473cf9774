"""Adapters: the domain's ports over real services (Microsoft Graph; Slack is in handlers/)."""
