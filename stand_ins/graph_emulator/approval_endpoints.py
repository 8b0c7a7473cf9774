"""Graph beta's approvals of Entra role activations: get, steps, and PATCH of a step.

``/beta/roleManagement/directory/roleAssignmentApprovals/{id}`` (``id`` = the schedule
request's ``approvalId``). Beta only: v1.0 has no approval relationship for directory roles.
Every method is delegated-only ("Application: Not supported" in each permissions table); the
docs do not give the answer an app token gets, and the emulator answers 403.
"""

from __future__ import annotations

from typing import Any

from werkzeug.exceptions import BadRequest
from werkzeug.wrappers import Response

from stand_ins.graph_emulator.errors import GraphError, bad_request
from stand_ins.graph_emulator.odata_responses import GraphCall, collection, entity
from stand_ins.graph_emulator.pim import PimState

_APPROVALS = "roleManagement/directory/roleAssignmentApprovals"


def _delegated_user(call: GraphCall) -> str:
    if not call.caller.is_user:
        raise GraphError(
            403,
            "Authorization_RequestDenied",
            "This API does not support application permissions; call it with a signed-in user.",
        )
    return call.caller.object_id


def get_approval(call: GraphCall, state: PimState, approval_id: str) -> Response:
    body = state.get_approval(approval_id, _delegated_user(call))
    return entity(call, call.context(f"{_APPROVALS}/$entity"), body)


def list_steps(call: GraphCall, state: PimState, approval_id: str) -> Response:
    steps = state.get_approval(approval_id, _delegated_user(call))["steps"]
    return collection(call, call.context(f"{_APPROVALS}('{approval_id}')/steps"), steps)


def get_step(call: GraphCall, state: PimState, approval_id: str, step_id: str) -> Response:
    step = state.get_approval_stage(approval_id, step_id, _delegated_user(call))
    return entity(call, call.context(f"{_APPROVALS}('{approval_id}')/steps/$entity"), step)


def review_step(call: GraphCall, state: PimState, approval_id: str, step_id: str) -> Response:
    """``{"reviewResult": "Approve"|"Deny", "justification": ...}`` → 204 No Content."""
    reviewer = _delegated_user(call)
    try:
        body: Any = call.request.get_json(force=True, silent=False)
    except BadRequest:
        raise bad_request("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    state.review_stage(
        approval_id, step_id, reviewer, body.get("reviewResult"), body.get("justification")
    )
    return Response(status=204)
