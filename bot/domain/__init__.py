"""The pure core: the request and its lifecycle table, rules, authority, ports, errors.

Imports nothing from Slack, SQLAlchemy, httpx, msal or pydantic (tests/test_layers.py).
"""
