"""OData response shaping: ``@odata.context``, ``$select``, ``$expand`` names and paging."""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Request, Response

from stand_ins.graph_emulator.errors import bad_request, json_response
from stand_ins.graph_emulator.odata import FilterSyntaxError, matches, parse_filter
from stand_ins.graph_emulator.tenant import Tenant
from stand_ins.graph_emulator.token import Caller

MAX_PAGE_SIZE = 999


@dataclass(frozen=True)
class GraphCall:
    """One authenticated Graph request and what a handler needs to answer it."""

    request: Request
    caller: Caller
    root: str  # e.g. https://127.0.0.1:8443/v1.0
    path: str  # after /v1.0, e.g. /users/ada@contoso.example
    tenant: Tenant

    def arg(self, name: str) -> str | None:
        """A query option by name; ``$filter`` and ``filter`` are the same option on Graph."""
        args: MultiDict[str, str] = self.request.args
        value = args.get(name)
        if value is None and name.startswith("$"):
            value = args.get(name[1:])
        return value

    def context(self, fragment: str) -> str:
        return f"{self.root}/$metadata#{fragment}"

    def select(self) -> list[str] | None:
        raw = self.arg("$select")
        return [f.strip() for f in raw.split(",") if f.strip()] if raw else None

    def expand(self) -> list[str]:
        """Top-level names of ``$expand`` (nested options in parentheses are kept attached)."""
        raw, names, depth, current = self.arg("$expand") or "", [], 0, ""
        for char in raw:
            depth += {"(": 1, ")": -1}.get(char, 0)
            if char == "," and depth == 0:
                names.append(current.strip())
                current = ""
            else:
                current += char
        if current.strip():
            names.append(current.strip())
        return names


def check_expand(call: GraphCall, allowed: Mapping[str, str], entity: str) -> list[str]:
    """The ``$expand`` names, or the 400 OData gives for a property the type does not have."""
    names = call.expand()
    for name in names:
        if name.split("(")[0] not in allowed:
            raise bad_request(
                f"Could not find a property named '{name.split('(')[0]}' on type "
                f"'microsoft.graph.{entity}'."
            )
    return names


def apply_filter(call: GraphCall, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    raw = call.arg("$filter")
    if not raw:
        return items
    try:
        condition = parse_filter(raw)
    except FilterSyntaxError as error:
        raise bad_request(str(error)) from None
    return [item for item in items if matches(condition, item)]


def selected(item: dict[str, Any], fields: list[str] | None) -> dict[str, Any]:
    if fields is None:
        return item
    return {k: v for k, v in item.items() if k.startswith("@odata.") or k in fields}


def _skip(token: str | None) -> int:
    if not token:
        return 0
    try:
        return int(base64.urlsafe_b64decode(token.encode()).decode().removeprefix("skip:"))
    except (ValueError, UnicodeDecodeError):
        raise bad_request("The $skiptoken is not valid.") from None


def collection(
    call: GraphCall,
    context: str,
    items: list[dict[str, Any]],
    render: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> Response:
    """A page of ``items`` with ``@odata.nextLink`` when more remain (page size = ``$top``)."""
    top_arg = call.arg("$top")
    try:
        page_size = min(int(top_arg), MAX_PAGE_SIZE) if top_arg else call.tenant.page_size
    except ValueError:
        raise bad_request(f"Invalid value '{top_arg}' for $top.") from None
    if page_size < 1:
        raise bad_request(f"Invalid value '{top_arg}' for $top.")
    start = _skip(call.arg("$skiptoken"))
    page = items[start : start + page_size]
    fields = call.select()
    body: dict[str, Any] = {"@odata.context": context}
    if start + page_size < len(items):
        params = [(k, v) for k, v in call.request.args.items(multi=True) if k != "$skiptoken"]
        token = base64.urlsafe_b64encode(f"skip:{start + page_size}".encode()).decode()
        params.append(("$skiptoken", token))
        path = quote(call.path, safe="/@'()=,:$")
        query = urlencode(params, quote_via=quote, safe="$',:@/")
        body["@odata.nextLink"] = f"{call.root}{path}?{query}"
    body["value"] = [selected(render(i) if render else i, fields) for i in page]
    return json_response(body)


def entity(call: GraphCall, context: str, item: dict[str, Any], status: int = 200) -> Response:
    return json_response({"@odata.context": context, **selected(item, call.select())}, status)
