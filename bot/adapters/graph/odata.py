"""Graph URLs and OData query strings, built by hand so their encoding is exact.

httpx would encode a space as ``+`` and ``$`` as ``%24``; Graph accepts both, but OData
string literals need their own care: single quotes are doubled (``O''Brien``) and ``+``,
``#``, ``&`` and ``%`` must be percent-encoded or the server reads something else.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import quote

# Left readable in query values, as in Microsoft's own examples: quotes, parentheses,
# ``$``/``=`` of a nested $expand, ``@`` of addresses and ``/`` of scope ids.
_QUERY_SAFE = "'(),@:/$="
_GUID = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


def is_guid(text: str) -> bool:
    return bool(_GUID.match(text))


def literal(value: str) -> str:
    """An OData string literal: quoted, with embedded single quotes doubled."""
    return "'" + value.replace("'", "''") + "'"


def query(params: Mapping[str, str]) -> str:
    """``$filter=...&$select=...`` with every value percent-encoded for Graph."""
    return "&".join(f"{name}={quote(value, safe=_QUERY_SAFE)}" for name, value in params.items())


def with_query(path: str, params: Mapping[str, str]) -> str:
    return f"{path}?{query(params)}" if params else path


def segment(value: str) -> str:
    """One path segment (an id or a UPN): ``#`` becomes ``%23``, ``/`` and ``?`` are escaped."""
    return quote(value, safe="@")


def user_path(ref: str) -> str:
    """``/users/{id|upn}``; a UPN starting with ``$`` must use the key form ``/users('$x@y')``."""
    if ref.startswith("$"):
        return f"/users({quote(literal(ref), safe=_QUERY_SAFE)})"
    return f"/users/{segment(ref)}"
