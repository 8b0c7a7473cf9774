"""Every Slack id pimbot renders and listens for: action, callback and block ids.

Builders, listener registrations and ``handlers/forms.py`` all use these, so "which function
handles X?" is one grep. Input block ids are the form field names from ``domain.rules`` so that a
validation error keyed by field lands on the right input in ``ack(response_action="errors")``.
"""

from __future__ import annotations

from enum import StrEnum

from bot.domain import rules


class ActionId(StrEnum):
    # Buttons; their ``value`` is only ever a request id (authority is re-checked on click).
    APPROVE = "pim-approve"
    DENY = "pim-deny"
    EXTEND = "pim-extend"
    DEACTIVATE = "pim-deactivate"
    CANCEL = "pim-cancel"
    APPROVE_EXTENSION = "pim-approve-extension"
    DENY_EXTENSION = "pim-deny-extension"
    ACKNOWLEDGE_BREAK_GLASS = "pim-acknowledge-break-glass"
    OPEN_REQUEST_MODAL = "pim-open-request-modal"
    REFRESH_HOME = "pim-refresh-home"
    # A link button (opens the sign-in page); Slack still sends the click, which is only acked.
    SIGN_IN_LINK = "pim-sign-in-link"
    # Elements inside input blocks (keys of ``view.state.values[block_id]``).
    ROLE_SELECT = "pim-role-select"  # dispatch_action: the modal re-renders for the chosen role
    DURATION_SELECT = "pim-duration-select"
    REASON_INPUT = "pim-reason-input"
    TICKET_NUMBER_INPUT = "pim-ticket-number-input"
    TICKET_SYSTEM_INPUT = "pim-ticket-system-input"
    START_PICKER = "pim-start-picker"
    BREAK_GLASS_CHECKBOX = "pim-break-glass-checkbox"
    DENY_REASON_INPUT = "pim-deny-reason-input"
    EXTEND_DURATION_SELECT = "pim-extend-duration-select"


class CallbackId(StrEnum):
    LOADING_MODAL = "pim-loading-modal"
    REQUEST_MODAL = "pim-request-modal"
    DENY_REASON_MODAL = "pim-deny-reason-modal"
    DENY_EXTENSION_MODAL = "pim-deny-extension-modal"
    # PIM's approval of a stage that requires the approver's justification.
    APPROVE_IN_PIM_MODAL = "pim-approve-in-pim-modal"
    EXTEND_MODAL = "pim-extend-modal"
    NOTICE_MODAL = "pim-notice-modal"


class BlockId(StrEnum):
    # Inputs: stable, named after the form fields.
    ROLE = rules.ROLE
    DURATION = rules.DURATION
    REASON = rules.REASON
    TICKET_NUMBER = rules.TICKET_NUMBER
    TICKET_SYSTEM = rules.TICKET_SYSTEM
    START = rules.START
    BREAK_GLASS = "break_glass"
    DENY_REASON = "deny_reason"
    EXTEND_DURATION = "extend_duration"
    # Layout blocks that code or tests look up.
    DECISION_ACTIONS = "pim-decision-actions"
    REQUESTER_ACTIONS = "pim-requester-actions"
    REVIEW_ACTIONS = "pim-review-actions"
    REVIEW_STATUS = "pim-review-status"
    STATUS = "pim-status"
    ROLE_RULES = "pim-role-rules"
    ROLE_OVERFLOW = "pim-role-overflow"
    HOME_ACTIONS = "pim-home-actions"
