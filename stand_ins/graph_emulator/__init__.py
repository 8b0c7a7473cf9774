"""A local Microsoft Graph PIM + Entra token-endpoint emulator for tests, the demo and benchmarks.

It speaks HTTPS (a throwaway CA; trust ``emu.ca_path``), serves OIDC discovery and the
client-credentials token endpoint at ``{url}/{tenant}/...``, and Graph ``{url}/v1.0/...``
with the shapes, status strings and errors of the real service (see docs/graph-pim.md).

Usage::

    with GraphEmulator(tenant=default_tenant()) as emu:
        emu.env()                 # AZURE_* and PIMBOT_* variables for a pimbot process
        emu.faults.throttle_next(2, retry_after="0.5")
        emu.state.active_assignments(user_id)
        emu.mint_token(user="ada@contoso.example", mfa=True)  # a delegated token, for tests
        httpx.Client(verify=emu.client_ssl_context())
        emu.app                   # the WSGI app, usable in-process without a socket

Run-time controls over HTTP (no authentication; the server listens on loopback by default):

``POST {url}/_emulator/faults`` with any of
    ``{"latency": 0.3, "throttle_every": 10, "retry_after": "1.5", "throttle_next": 2,
    "fail_next": 1, "fail_status": 503, "drop_next": 1, "drop_response_of_next_create": 1,
    "policy_message_format": "bracketed" | "described", "reset": true}``
    (``reset`` is applied first; counters add up). ``GET`` returns the current knobs.
``POST {url}/_emulator/clock`` with ``{"advance_seconds": 600}`` moves emulator time forward;
    ``GET`` returns ``{"now": ...}``.
``POST {url}/_emulator/approvals/{requestId}`` with ``{"decision": "approve" | "deny"}``
    plays the PIM portal for a ``PendingApprovalProvisioning`` self-activation: with
    ``"reviewer": "grace@contoso.example"`` (and optionally ``"justification"``) that approver
    reviews the open stage under the Graph rules (403/409 as JSON ``{"error", "code"}``);
    without a reviewer an administrator decides every remaining stage at once.
``GET {url}/_emulator/state``: emulator time, Graph request count, active assignments, requests.

Approvals (Graph **beta** only, delegated tokens only, as Microsoft documents them):
``GET {url}/beta/roleManagement/directory/roleAssignmentApprovals/{approvalId}`` (with
``steps``), ``.../steps``, ``.../steps/{stepId}``, and ``PATCH .../steps/{stepId}`` with
``{"reviewResult": "Approve" | "Deny", "justification": ...}`` → 204. Serial stages,
stage timeouts (request ``TimedOut``) and escalation follow the emulator clock; see
``approvals.py``. ``GET .../roleAssignmentScheduleRequests/filterByCurrentUser(on='approver')``
(v1.0 and beta) lists the pending requests the caller may review now. ``emu.beta_url``.

The identity platform (for delegated mode): ``GET {url}/{tenant}/oauth2/v2.0/authorize`` shows
a real sign-in page (password, then the MFA code, then an authentication-context step when the
``claims`` ask for ``acrs``) and redirects with a code; the token endpoint redeems codes (PKCE
S256), refresh tokens and device codes (``POST .../devicecode``, page ``{url}/devicelogin``).
Scripted, browserless sign-in: ``sign_in(authorize_url, username=..., password=...,
mfa_code=..., verify=emu.client_ssl_context())`` and ``sign_in_device(...)``. Switches:
``emu.update_sign_in(require_mfa=False)``, ``emu.update_sign_in(block_device_code=True)``;
the log of sign-ins: ``emu.sign_ins``.
"""

from stand_ins.graph_emulator.faults import Faults
from stand_ins.graph_emulator.identity import SignInRecord
from stand_ins.graph_emulator.runner import run_emulator
from stand_ins.graph_emulator.server import GraphEmulator
from stand_ins.graph_emulator.sign_in_client import SignInError, sign_in, sign_in_device
from stand_ins.graph_emulator.tenant import (
    Tenant,
    TenantFileError,
    default_tenant,
    load_tenant,
)

__all__ = [
    "Faults",
    "GraphEmulator",
    "SignInError",
    "SignInRecord",
    "Tenant",
    "TenantFileError",
    "default_tenant",
    "load_tenant",
    "run_emulator",
    "sign_in",
    "sign_in_device",
]
