"""The emulator as one WSGI app: token service, Graph ``/v1.0`` and ``/_emulator`` controls."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

from stand_ins.graph_emulator.clock import EmulatorClock
from stand_ins.graph_emulator.errors import (
    DropConnection,
    GraphError,
    error_response,
    json_response,
)
from stand_ins.graph_emulator.faults import FaultDecision, Faults
from stand_ins.graph_emulator.graph import GraphApi
from stand_ins.graph_emulator.isotime import format_instant
from stand_ins.graph_emulator.pim import PimState
from stand_ins.graph_emulator.sign_in_pages import SignInPages
from stand_ins.graph_emulator.sts_errors import StsError, sts_error_response
from stand_ins.graph_emulator.token import SecurityTokenService

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

_DISCOVERY = re.compile(r"^/(?P<tenant>[^/]+)/v2\.0/\.well-known/openid-configuration$")
_TOKEN = re.compile(r"^/(?P<tenant>[^/]+)/oauth2/v2\.0/token$")
_KEYS = re.compile(r"^/(?P<tenant>[^/]+)/discovery/v2\.0/keys$")
_AUTHORIZE = re.compile(r"^/(?P<tenant>[^/]+)/oauth2/v2\.0/authorize$")
_LOGIN = re.compile(r"^/(?P<tenant>[^/]+)/login$")
_DEVICE_CODE = re.compile(r"^/(?P<tenant>[^/]+)/oauth2/v2\.0/devicecode$")
_APPROVAL = re.compile(r"^/_emulator/approvals/(?P<request_id>[^/]+)$")

# Bodies as Graph sends them for these statuses.
_FAILURES = {
    500: ("generalException", "General exception while processing."),
    502: ("UnknownError", ""),
    503: ("serviceNotAvailable", "Service Unavailable"),
    504: ("UnknownError", ""),
}


class EmulatorApp:
    """WSGI callable; safe to call from many threads at once."""

    def __init__(
        self, state: PimState, sts: SecurityTokenService, faults: Faults, clock: EmulatorClock
    ) -> None:
        self.state, self.sts, self.faults, self.clock = state, sts, faults, clock
        self.graph = GraphApi(state.tenant, state, sts, faults)
        self.sign_in_pages = SignInPages(sts)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        response = self.dispatch(request)
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        base_url = request.host_url.rstrip("/")
        path = request.path
        for version in ("v1.0", "beta"):
            if path == f"/{version}" or path.startswith(f"/{version}/"):
                return self._graph(
                    request, base_url, path.removeprefix(f"/{version}") or "/", version
                )
        if path.startswith("/_emulator/"):
            return self._control(request, path)
        if path == "/devicelogin" and request.method in ("GET", "POST"):
            return self.sign_in_pages.device_login(request, base_url)
        if (match := _AUTHORIZE.match(path)) and request.method == "GET":
            return self.sign_in_pages.authorize(request, base_url, match["tenant"])
        if (match := _LOGIN.match(path)) and request.method == "POST":
            return self.sign_in_pages.login(request, base_url, match["tenant"])
        try:
            return self._sts(request, base_url, path)
        except StsError as error:
            return sts_error_response(error, base_url)

    # --- token service ------------------------------------------------------------------------

    def _sts(self, request: Request, base_url: str, path: str) -> Response:
        if (match := _DISCOVERY.match(path)) and request.method == "GET":
            return json_response(self.sts.discovery(base_url, match["tenant"]))
        if (match := _TOKEN.match(path)) and request.method == "POST":
            form = request.form.to_dict()
            if request.authorization and request.authorization.type == "basic":
                # client_secret_basic: the credentials arrive in the Authorization header.
                form.setdefault("client_id", request.authorization.username or "")
                form.setdefault("client_secret", request.authorization.password or "")
            return json_response(self.sts.issue_for_client(base_url, match["tenant"], form))
        if (match := _DEVICE_CODE.match(path)) and request.method == "POST":
            form = request.form.to_dict()
            return json_response(self.sts.device_authorization(base_url, match["tenant"], form))
        if (match := _KEYS.match(path)) and request.method == "GET":
            if not self.sts.knows_tenant(match["tenant"]):
                raise self.sts.unknown_tenant(match["tenant"])
            return json_response(self.sts.keys())
        return json_response({"error": "not_found", "error_description": f"No route {path}"}, 404)

    # --- Graph --------------------------------------------------------------------------------

    def _graph(self, request: Request, base_url: str, path: str, version: str) -> Response:
        decision = self.faults.decide(self.state.count_graph_request())
        if decision.latency > 0:
            time.sleep(decision.latency)
        client_request_id = request.headers.get("client-request-id")
        try:
            self._apply_fault(decision)
            response = self.graph.handle(request, base_url, path, version)
        except GraphError as error:
            return error_response(error, now=self.clock.now(), client_request_id=client_request_id)
        if client_request_id:
            response.headers["client-request-id"] = client_request_id
        return response

    def _apply_fault(self, decision: FaultDecision) -> None:
        if decision.drop:
            raise DropConnection("fault injection: drop_next")
        if decision.fail_status is not None:
            code, message = _FAILURES.get(decision.fail_status, ("UnknownError", ""))
            raise GraphError(decision.fail_status, code, message)
        if decision.throttle_retry_after is not None:
            raise GraphError(
                429,
                "TooManyRequests",
                "Please retry again later.",
                headers={"Retry-After": decision.throttle_retry_after},
                inner={"status": "429"},
            )

    # --- /_emulator controls ------------------------------------------------------------------

    def _control(self, request: Request, path: str) -> Response:
        try:
            body: dict[str, Any] = request.get_json(silent=True) or {}
            if path == "/_emulator/faults":
                if request.method == "POST":
                    self.faults.update(body)
                return json_response(self.faults.snapshot())
            if path == "/_emulator/clock":
                if request.method == "POST":
                    self.clock.advance(timedelta(seconds=float(body.get("advance_seconds", 0))))
                return json_response({"now": format_instant(self.clock.now())})
            if (match := _APPROVAL.match(path)) and request.method == "POST":
                decision = str(body.get("decision", "")).lower()
                if decision not in ("approve", "deny"):
                    raise ValueError("decision must be 'approve' or 'deny'")
                reviewer, justification = body.get("reviewer"), body.get("justification")
                if reviewer is not None and not isinstance(reviewer, str):
                    raise ValueError("reviewer must be a user id or userPrincipalName")
                if justification is not None and not isinstance(justification, str):
                    raise ValueError("justification must be a string")
                return json_response(
                    self.state.decide_approval(
                        match["request_id"],
                        approve=decision == "approve",
                        reviewer=reviewer,
                        justification=justification,
                    )
                )
            if path == "/_emulator/state":
                return json_response(
                    {
                        "now": format_instant(self.clock.now()),
                        "requestCount": self.state.request_count,
                        "assignments": self.state.assignment_instances(),
                        "requests": self.state.requests,
                        "approvals": self.state.approvals,
                        "signIns": [
                            {
                                "at": format_instant(r.at),
                                "flow": r.flow,
                                "userId": r.user_id,
                                "userPrincipalName": r.user_principal_name,
                                "succeeded": r.succeeded,
                                "errorCode": r.error_code,
                                "amr": list(r.amr),
                                "acrs": list(r.acrs),
                            }
                            for r in self.sts.identity.sign_ins
                        ],
                    }
                )
        except (ValueError, TypeError) as error:
            return json_response({"error": str(error)}, 400)
        except GraphError as error:
            return json_response({"error": error.message, "code": error.code}, error.status)
        return json_response({"error": f"No route {request.method} {path}"}, 404)
