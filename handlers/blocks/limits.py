"""The Block Kit limits slack_sdk does not check, checked before Slack has to refuse a payload.

slack_sdk validates some limits in ``to_dict()`` (title length, options per select, ...); it
does not check blocks per message, ``plain_text_input.max_length`` ≤ 3000, unique block ids,
input blocks without a submit button, and a few more. Both functions run ``to_dict()`` first
(so the SDK's own checks raise ``SlackObjectFormationError``) and return a list of problems,
empty when the payload is fine.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from handlers import text

JSON = dict[str, Any]


def check_message_limits(blocks: Sequence[Block | JSON], fallback_text: str = "x") -> list[str]:
    """Problems with a message's blocks and fallback text (at most 50 blocks, ...)."""
    dicts = [b.to_dict() if isinstance(b, Block) else b for b in blocks]
    problems = _blocks_problems(dicts, text.MESSAGE_BLOCKS, "message")
    if not fallback_text.strip():
        problems.append("message: fallback text is empty")
    if len(fallback_text) > text.FALLBACK_TEXT:
        problems.append(f"message: fallback text has {len(fallback_text)} characters")
    return problems


def check_view_limits(view: View | JSON) -> list[str]:
    """Problems with a modal or Home tab view (at most 100 blocks, submit with inputs, ...)."""
    data = view.to_dict() if isinstance(view, View) else view
    blocks = data.get("blocks") or []
    problems = _blocks_problems(blocks, text.VIEW_BLOCKS, data.get("type", "view"))
    for key in ("title", "submit", "close"):
        value = (data.get(key) or {}).get("text", "")
        if len(value) > text.MODAL_TITLE:
            problems.append(f"view {key} has {len(value)} characters (max {text.MODAL_TITLE})")
    if len(data.get("private_metadata") or "") > text.PRIVATE_METADATA:
        problems.append("view private_metadata is over 3000 characters")
    if len(data.get("callback_id") or "") > text.CALLBACK_ID:
        problems.append("view callback_id is over 255 characters")
    if data.get("type") == "modal":
        if not blocks:
            problems.append("modal has no blocks")
        if any(b.get("type") == "input" for b in blocks) and not data.get("submit"):
            problems.append("modal has input blocks but no submit button")
    return problems


def _blocks_problems(blocks: Sequence[JSON], limit: int, where: str) -> list[str]:
    problems = []
    if len(blocks) > limit:
        problems.append(f"{where}: {len(blocks)} blocks (max {limit})")
    seen: set[str] = set()
    for i, block in enumerate(blocks):
        block_id = block.get("block_id")
        if block_id is not None:
            if block_id in seen:
                problems.append(f"{where}: duplicate block_id {block_id!r}")
            seen.add(block_id)
        problems += [f"{where} block {i} ({block.get('type')}): {p}" for p in _walk(block)]
    return problems


def _text_len(obj: Any) -> int:
    if isinstance(obj, Mapping):
        return len(str(obj.get("text", "")))
    return len(str(obj or ""))


def _walk(node: Any) -> Iterator[str]:
    if isinstance(node, list):
        for item in node:
            yield from _walk(item)
        return
    if not isinstance(node, Mapping):
        return
    yield from _node_problems(node)
    for value in node.values():
        yield from _walk(value)


_TEXT_LIMITS: dict[str, tuple[tuple[str, int], ...]] = {
    "section": (("text", text.SECTION_TEXT),),
    "header": (("text", text.HEADER_TEXT),),
    "input": (("label", text.INPUT_LABEL), ("hint", text.INPUT_HINT)),
    "button": (("text", text.BUTTON_TEXT),),
}
_COUNT_LIMITS: dict[str, tuple[tuple[str, int], ...]] = {
    "section": (("fields", text.SECTION_FIELDS),),
    "actions": (("elements", text.ACTIONS_ELEMENTS),),
    "context": (("elements", text.CONTEXT_ELEMENTS),),
    "static_select": (("options", text.SELECT_OPTIONS), ("option_groups", text.SELECT_OPTIONS)),
    "checkboxes": (("options", 10),),
    "radio_buttons": (("options", 10),),
}


def _node_problems(node: Mapping[str, Any]) -> Iterator[str]:
    kind = str(node.get("type", ""))
    for key, limit in _TEXT_LIMITS.get(kind, ()):
        if key in node and _text_len(node[key]) > limit:
            yield f"{key} is over {limit} characters"
    for key, limit in _COUNT_LIMITS.get(kind, ()):
        if len(node.get(key) or ()) > limit:
            yield f"more than {limit} {key}"
    if kind == "section":
        for field in node.get("fields") or ():
            if _text_len(field) > text.SECTION_FIELD:
                yield f"a field is over {text.SECTION_FIELD} characters"
    if kind == "context":
        for element in node.get("elements") or ():
            if _text_len(element) > text.CONTEXT_TEXT:
                yield f"a context element is over {text.CONTEXT_TEXT} characters"
    if kind == "plain_text_input":
        for key in ("max_length", "min_length"):
            if int(node.get(key) or 0) > text.PLAIN_TEXT_INPUT_MAX:
                yield f"plain_text_input {key} is over {text.PLAIN_TEXT_INPUT_MAX}"
        if node.get("max_length") and len(node.get("initial_value") or "") > node["max_length"]:
            yield "plain_text_input initial_value is longer than max_length"
    if kind == "button" and len(str(node.get("value") or "")) > text.BUTTON_VALUE:
        yield f"button value is over {text.BUTTON_VALUE} characters"
    for group in node.get("option_groups") or ():
        if len(group.get("options") or ()) > text.SELECT_OPTIONS:
            yield f"an option group has more than {text.SELECT_OPTIONS} options"
    if "value" in node and "text" in node and not kind:  # an option object
        if len(str(node["value"])) > text.OPTION_VALUE:
            yield f"option value is over {text.OPTION_VALUE} characters"
        if _text_len(node["text"]) > text.OPTION_TEXT:
            yield f"option text is over {text.OPTION_TEXT} characters"
    if "confirm" in node and isinstance(node["confirm"], Mapping):
        confirm = node["confirm"]
        if _text_len(confirm.get("text")) > text.CONFIRM_TEXT:
            yield f"confirm text is over {text.CONFIRM_TEXT} characters"
    for key in ("block_id", "action_id"):
        if len(str(node.get(key) or "")) > text.BLOCK_ID:
            yield f"{key} is over {text.BLOCK_ID} characters"
