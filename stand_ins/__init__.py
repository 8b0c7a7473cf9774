"""Local stand-ins for Slack and Microsoft Graph, used by the demo and the tests."""
