"""The ``/pim`` request modal: eligible roles grouped, limits shown, requirements explained."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from slack_sdk.models.blocks import (
    Block,
    CheckboxesElement,
    DateTimePickerElement,
    InputBlock,
    Option,
    OptionGroup,
    PlainTextInputElement,
    SectionBlock,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from bot.domain.durations import humanize, to_iso8601
from bot.domain.ports import ActiveAssignment, EligibleRole
from bot.domain.rules import (
    MAX_REASON_LENGTH,
    MAX_TICKET_LENGTH,
    MIN_BREAK_GLASS_REASON_LENGTH,
    PIM_MAX_ACTIVATION,
    EffectiveRules,
)
from handlers import text
from handlers.blocks.elements import (
    context,
    default_duration,
    duration_choices,
    duration_options,
    md,
    plain_text,
)
from handlers.blocks.when import utc_clock
from handlers.ids import ActionId, BlockId, CallbackId

TITLE = "Request a PIM role"
BREAK_GLASS_VALUE = "break_glass"
DIRECT_GROUP = "Eligible"


@dataclass(frozen=True)
class _RoleChoice:
    role_id: str
    name: str
    group: str
    note: str  # "(active until 14:00 UTC)" or ""


def request_modal(
    eligible: Sequence[EligibleRole],
    active: Sequence[ActiveAssignment],
    rules_by_role: Mapping[str, EffectiveRules],
    selected_role_id: str | None = None,
    private_metadata: str = "",
    *,
    requester_slack_id: str = "",
    group_names: Mapping[str, str] | None = None,
) -> View:
    """The request form for the roles ``eligible`` lists; limits follow the selected role."""
    choices = _role_choices(eligible, active, group_names or {})
    if not choices:
        return View(
            type="modal",
            callback_id=CallbackId.REQUEST_MODAL.value,
            title=plain_text(TITLE, text.MODAL_TITLE),
            close=plain_text("Close", text.MODAL_BUTTON),
            private_metadata=private_metadata,
            blocks=[
                SectionBlock(
                    text=md(
                        "You have no PIM roles you could activate right now. If you think you "
                        "should, ask your Entra administrator to make you eligible."
                    )
                )
            ],
        )
    selected = rules_by_role.get(selected_role_id or "")
    shown = _capped(choices, selected_role_id)
    blocks: list[Block] = [_role_input(shown, selected_role_id)]
    if len(shown) < len(choices):
        blocks.append(
            context(
                f"Showing {len(shown)} of {len(choices)} eligible roles. For another one, type "
                "`/pim request <role name>`.",
                block_id=BlockId.ROLE_OVERFLOW.value,
            )
        )
    blocks.append(context(_rules_line(selected), block_id=BlockId.ROLE_RULES.value))
    relevant = [rules_by_role[c.role_id] for c in choices if c.role_id in rules_by_role]
    blocks += [
        _duration_input(selected, relevant),
        _reason_input(),
        *_ticket_inputs(selected, relevant),
        _start_input(),
    ]
    # Offered only where this person may break glass on that role, and where doing so does not
    # bypass PIM's own approval unless the policy file allows it for that very role.
    glass = [r for r in relevant if r.offers_break_glass(requester_slack_id)]
    if selected is not None and not selected.offers_break_glass(requester_slack_id):
        glass = []
    if glass:
        blocks.append(_break_glass_input(glass))
    submit = "Activate" if selected is not None and not selected.approval_required else "Request"
    return View(
        type="modal",
        callback_id=CallbackId.REQUEST_MODAL.value,
        title=plain_text(TITLE, text.MODAL_TITLE),
        submit=plain_text(submit, text.MODAL_BUTTON),
        close=plain_text("Cancel", text.MODAL_BUTTON),
        private_metadata=private_metadata,
        blocks=blocks,
    )


def _role_choices(
    eligible: Sequence[EligibleRole],
    active: Sequence[ActiveAssignment],
    group_names: Mapping[str, str],
) -> list[_RoleChoice]:
    # One option per role: a select must not repeat a value, and a role can be eligible both
    # directly and through a group. Direct eligibility wins the grouping.
    active_until = {a.role.role_definition_id: a.ends_at for a in active}
    by_role: dict[str, _RoleChoice] = {}
    for item in sorted(eligible, key=lambda e: e.via_group_id is not None):
        role_id = item.role.role_definition_id
        if role_id in by_role:
            continue
        if item.member_type == "Group" or item.via_group_id:
            name = group_names.get(item.via_group_id or "")
            group = f"Via group {name}" if name else "Via a group"
        else:
            group = DIRECT_GROUP
        note = ""
        if role_id in active_until:
            ends = active_until[role_id]
            note = f" (active until {utc_clock(ends)})" if ends else " (active, permanent)"
        by_role[role_id] = _RoleChoice(role_id, item.role.display_name, group, note)
    return sorted(
        by_role.values(), key=lambda c: (c.group != DIRECT_GROUP, c.group, c.name.lower())
    )


def _capped(choices: list[_RoleChoice], selected_role_id: str | None) -> list[_RoleChoice]:
    if len(choices) <= text.SELECT_OPTIONS:
        return choices
    shown = choices[: text.SELECT_OPTIONS]
    chosen = next((c for c in choices if c.role_id == selected_role_id), None)
    if chosen is not None and chosen not in shown:
        shown = [*shown[:-1], chosen]
    return shown


def _option(choice: _RoleChoice) -> Option:
    name = text.truncate(choice.name, text.OPTION_TEXT - len(choice.note))
    return Option(value=choice.role_id, text=plain_text(name + choice.note, text.OPTION_TEXT))


def _role_input(shown: list[_RoleChoice], selected_role_id: str | None) -> InputBlock:
    options = {c.role_id: _option(c) for c in shown}
    groups: dict[str, list[Option]] = {}
    for choice in shown:
        groups.setdefault(choice.group, []).append(options[choice.role_id])
    element = StaticSelectElement(
        action_id=ActionId.ROLE_SELECT.value,
        placeholder=plain_text("Choose a role", text.PLACEHOLDER),
        initial_option=options.get(selected_role_id or ""),
        **(
            {"options": list(options.values())}
            if len(groups) == 1
            else {
                "option_groups": [
                    OptionGroup(label=plain_text(label, text.OPTION_GROUP_LABEL), options=opts)
                    for label, opts in groups.items()
                ]
            }
        ),
    )
    # dispatch_action: choosing a role sends block_actions so the modal can show its limits.
    return InputBlock(
        block_id=BlockId.ROLE.value,
        label=plain_text("Role", text.INPUT_LABEL),
        element=element,
        dispatch_action=True,
    )


def _rules_line(rules: EffectiveRules | None) -> str:
    if rules is None:
        return "Choose a role to see how long you may have it and what it needs."
    parts = [f"*{text.escape(rules.role.display_name)}*: up to {humanize(rules.max_duration)}"]
    if rules.ticket_required:
        parts.append("ticket required")
    if rules.approval_required:
        n = rules.quorum
        parts.append(f"needs approval from {n} {'people' if n > 1 else 'person'}")
    else:
        parts.append("activates without approval")
    if rules.needs_user_proof:
        parts.append("PIM asks for MFA on activation")
    return text.truncate(" · ".join(parts), text.CONTEXT_TEXT)


def _duration_input(
    selected: EffectiveRules | None, relevant: Sequence[EffectiveRules]
) -> InputBlock:
    if selected is not None:
        maximum = selected.max_duration
        hint = (
            f"{selected.role.display_name} allows at most {humanize(maximum)} (set by "
            f"{selected.max_duration_source})."
        )
    else:
        maximum = max((r.max_duration for r in relevant), default=PIM_MAX_ACTIVATION)
        hint = "The role you pick may allow less; its limit shows once you pick it."
    choices = duration_choices(maximum)
    initial = default_duration(choices)
    options = duration_options(choices)
    return InputBlock(
        block_id=BlockId.DURATION.value,
        label=plain_text(f"Duration (at most {humanize(maximum)})", text.INPUT_LABEL),
        hint=plain_text(hint, text.INPUT_HINT),
        element=StaticSelectElement(
            action_id=ActionId.DURATION_SELECT.value,
            options=options,
            initial_option=next(o for o in options if o.value == to_iso8601(initial)),
        ),
    )


def _reason_input() -> InputBlock:
    return InputBlock(
        block_id=BlockId.REASON.value,
        label=plain_text("Reason", text.INPUT_LABEL),
        hint=plain_text(
            "Approvers and the audit log see this; PIM stores it too.", text.INPUT_HINT
        ),
        element=PlainTextInputElement(
            action_id=ActionId.REASON_INPUT.value,
            multiline=True,
            max_length=MAX_REASON_LENGTH,
            placeholder=plain_text("What will you do with the role?", text.PLACEHOLDER),
        ),
    )


def _ticket_inputs(
    selected: EffectiveRules | None, relevant: Sequence[EffectiveRules]
) -> list[InputBlock]:
    # The modal serves many roles at once, so "required" is only marked for a selected role;
    # otherwise the hint names the roles that need one and the submission check enforces it.
    if selected is not None:
        required = selected.ticket_required
        hint = f"Format: {selected.ticket_pattern}" if selected.ticket_pattern else None
    else:
        required = False
        needing = [r.role.display_name for r in relevant if r.ticket_required]
        hint = f"Required for {', '.join(needing)}." if needing else None
    label = "Ticket number (required)" if required else "Ticket number"
    return [
        InputBlock(
            block_id=BlockId.TICKET_NUMBER.value,
            label=plain_text(label, text.INPUT_LABEL),
            hint=plain_text(hint, text.INPUT_HINT) if hint else None,
            optional=not required,
            element=PlainTextInputElement(
                action_id=ActionId.TICKET_NUMBER_INPUT.value, max_length=MAX_TICKET_LENGTH
            ),
        ),
        InputBlock(
            block_id=BlockId.TICKET_SYSTEM.value,
            label=plain_text("Ticket system", text.INPUT_LABEL),
            optional=True,
            element=PlainTextInputElement(
                action_id=ActionId.TICKET_SYSTEM_INPUT.value,
                max_length=MAX_TICKET_LENGTH,
                placeholder=plain_text("e.g. ServiceNow", text.PLACEHOLDER),
            ),
        ),
    ]


def _start_input() -> InputBlock:
    return InputBlock(
        block_id=BlockId.START.value,
        label=plain_text("Start (optional)", text.INPUT_LABEL),
        hint=plain_text("Leave empty to start as soon as it is approved.", text.INPUT_HINT),
        optional=True,
        element=DateTimePickerElement(action_id=ActionId.START_PICKER.value),
    )


def _break_glass_input(roles: Sequence[EffectiveRules]) -> InputBlock:
    names = ", ".join(r.role.display_name for r in roles)
    return InputBlock(
        block_id=BlockId.BREAK_GLASS.value,
        label=plain_text("Emergency", text.INPUT_LABEL),
        hint=plain_text(
            f"Break glass skips approval and tells every approver at once; one of them must "
            f"review it afterwards. Needs a reason of at least {MIN_BREAK_GLASS_REASON_LENGTH} "
            f"characters. Allowed for: {names}",
            text.INPUT_HINT,
        ),
        optional=True,
        element=CheckboxesElement(
            action_id=ActionId.BREAK_GLASS_CHECKBOX.value,
            options=[
                Option(
                    value=BREAK_GLASS_VALUE,
                    text=md("*Break glass*: activate now, without waiting for approval"),
                )
            ],
        ),
    )
