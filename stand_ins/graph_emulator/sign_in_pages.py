"""The emulator's sign-in web pages: /authorize, the username/password, MFA and
authentication-context steps, and /devicelogin. Server-rendered HTML, no script needed.

Every form posts back to the emulator with an opaque ``flow`` field naming the server-side
record of the sign-in (``identity.SignInFlow``). Field and button ids are stable (``username``,
``password``, ``otc``, ``submit``, ``cancel``) for browser tests and ``sign_in_client``.
"""

from __future__ import annotations

import html
import secrets
import uuid
from datetime import UTC, datetime
from urllib.parse import urlencode, urlsplit, urlunsplit

from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from stand_ins.graph_emulator.identity import (
    AuthorizeError,
    AuthorizeErrorPage,
    AuthorizeRequest,
    SignInFlow,
    acrs_needed,
    grant_of,
    kind_of,
    mfa_demanded,
    mfa_needed,
    parse_claims,
    redirect_uri_registered,
    resolve_scopes,
    with_amr,
)
from stand_ins.graph_emulator.token import SecurityTokenService

# Entra's texts for the sign-in failures the pages show.
INVALID_CREDENTIALS = (
    "AADSTS50126: Error validating credentials due to invalid username or password."
)
USER_DISABLED = "AADSTS50057: The user account is disabled."
UNKNOWN_USER = (
    "AADSTS50034: The user account does not exist in the directory. To sign into this "
    "application, the account must be added to the directory."
)
WRONG_OTC = "You didn't enter the expected verification code. Please try again."
DEVICE_CODE_BLOCKED = (
    "AADSTS53003: Access has been blocked by Conditional Access policies. The access policy "
    "does not allow token issuance."
)
DECLINED = "AADSTS65004: User declined to consent to access the app."
_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem}"
    "label{display:block;margin-top:1rem}input{display:block;width:100%;padding:.4rem;"
    "font-size:1rem}.error{color:#a4262c;font-weight:600}.buttons{margin-top:1.5rem}"
    "button{font-size:1rem;padding:.4rem 1.2rem;margin-right:.5rem}"
)


def _trace_suffix() -> str:
    timestamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return f" Trace ID: {uuid.uuid4()} Correlation ID: {uuid.uuid4()} Timestamp: {timestamp}"


def _page(title: str, body: str, status: int = 200) -> Response:
    document = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)} - Microsoft Entra ID (emulated)</title>\n"
        f"<style>{_STYLE}</style>\n</head>\n<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )
    response = Response(document, status=status, content_type="text/html; charset=utf-8")
    response.headers["Cache-Control"] = "no-store"
    return response


def _error_paragraph(error: str | None) -> str:
    if not error:
        return ""
    return f'<p id="error" class="error" role="alert">{html.escape(error)}</p>\n'


def _field(
    name: str, label: str, kind: str, error: str | None, value: str = "", **attrs: str
) -> str:
    extra = "".join(f' {k.replace("_", "-")}="{html.escape(v)}"' for k, v in attrs.items())
    described = ' aria-describedby="error" aria-invalid="true"' if error else ""
    return (
        f'<label for="{name}">{html.escape(label)}</label>\n'
        f'<input id="{name}" name="{name}" type="{kind}" value="{html.escape(value)}" '
        f"required{described}{extra}>\n"
    )


def _buttons(submit: str) -> str:
    # Cancel needs no input: formnovalidate lets it through with empty required fields.
    return (
        '<div class="buttons">\n'
        f'<button id="submit" name="submit" value="1" type="submit">{html.escape(submit)}</button>'
        '\n<button id="cancel" name="cancel" value="1" type="submit" formnovalidate>Cancel'
        "</button>\n</div>\n"
    )


def _form(action: str, flow: SignInFlow | None, inner: str, submit: str) -> str:
    hidden = (
        f'<input type="hidden" name="flow" value="{html.escape(flow.flow_id)}">\n' if flow else ""
    )
    opening = f'<form method="post" action="{html.escape(action)}">\n'
    return f"{opening}{hidden}{inner}{_buttons(submit)}</form>"


def error_page(code: int, description: str, status: int = 400) -> Response:
    body = (
        "<h1>Sorry, but we're having trouble signing you in.</h1>\n"
        f'<p id="error" class="error" role="alert">AADSTS{code}: {html.escape(description)}</p>'
    )
    return _page("Sign in error", body, status)


def _answer(redirect_uri: str, params: dict[str, str], response_mode: str) -> Response:
    """The authorization response: a 302 with the query, or for ``form_post`` a page whose form
    posts the fields to the redirect URI (Entra's page submits it by script; here a button
    does, inside <noscript>, and the script only saves a click)."""
    if response_mode != "form_post":
        return redirect(_with_query(redirect_uri, params), 302)
    fields = "".join(
        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">\n'
        for k, v in params.items()
    )
    body = (
        "<h1>Signing you in</h1>\n"
        f'<form id="response" method="post" action="{html.escape(redirect_uri)}">\n{fields}'
        '<noscript><button id="submit" type="submit">Continue</button></noscript>\n</form>\n'
        "<script>document.getElementById('response').submit()</script>"
    )
    return _page("Signing you in", body)


def _cancelled_page() -> Response:
    body = (
        '<h1>Sign-in cancelled</h1>\n<p id="done">You cancelled the sign-in. '
        "You may now close this window.</p>"
    )
    return _page("Sign-in cancelled", body)


def _with_query(uri: str, params: dict[str, str]) -> str:
    parts = urlsplit(uri)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


class SignInPages:
    """The HTML side of the identity platform; reads the tenant through ``sts`` (live)."""

    def __init__(self, sts: SecurityTokenService) -> None:
        self.sts = sts
        self.store = sts.identity

    # --- /authorize -------------------------------------------------------------------------

    def authorize(self, request: Request, base_url: str, tenant_ref: str) -> Response:
        args = request.args
        try:
            client_id, redirect_uri = self._checked_client_and_redirect(tenant_ref, args)
        except AuthorizeErrorPage as error:
            return error_page(error.code, error.description)
        state = args.get("state")
        response_mode = "form_post" if args.get("response_mode") == "form_post" else "query"
        try:
            authorize = self._checked_request(args, client_id, redirect_uri, state)
        except AuthorizeError as error:
            return self._redirect_error(
                redirect_uri, error.error, error.code, error.description, state, response_mode
            )
        flow = self.store.start_flow(authorize=authorize)
        return self._credentials_page(base_url, flow, login_hint=authorize.login_hint or "")

    def _checked_client_and_redirect(self, tenant_ref: str, args: object) -> tuple[str, str]:
        from werkzeug.datastructures import MultiDict

        assert isinstance(args, MultiDict)
        if not self.sts.knows_tenant(tenant_ref):
            raise AuthorizeErrorPage(90002, f"Tenant '{tenant_ref}' not found.")
        app = self.sts.tenant.app
        client_id = args.get("client_id", "")
        if not client_id:
            raise AuthorizeErrorPage(
                900144, "The request body must contain the following parameter: 'client_id'."
            )
        if client_id.lower() != app.client_id:
            raise AuthorizeErrorPage(
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{self.sts.tenant.display_name}'.",
            )
        redirect_uri = args.get("redirect_uri", "")
        if not redirect_uri:
            raise AuthorizeErrorPage(
                900144, "The request body must contain the following parameter: 'redirect_uri'."
            )
        if not redirect_uri_registered(redirect_uri, app.redirect_uris):
            raise AuthorizeErrorPage(
                50011,
                f"The redirect URI '{redirect_uri}' specified in the request does not match the "
                f"redirect URIs configured for the application '{app.client_id}'. Make sure the "
                "redirect URI sent in the request matches one added to your application in the "
                "Azure portal.",
            )
        return app.client_id, redirect_uri

    def _checked_request(
        self, args: object, client_id: str, redirect_uri: str, state: str | None
    ) -> AuthorizeRequest:
        from werkzeug.datastructures import MultiDict

        assert isinstance(args, MultiDict)
        app = self.sts.tenant.app
        response_type = args.get("response_type", "")
        if not response_type:
            raise AuthorizeError(
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'response_type'.",
            )
        if response_type != "code":
            raise AuthorizeError(
                "unsupported_response_type",
                70005,
                f"The provided value for the input parameter 'response_type' is not allowed for "
                f"this request. Expected value: 'code'. Actual value: '{response_type}'.",
            )
        response_mode = args.get("response_mode")
        if response_mode not in (None, "", "query", "form_post"):
            # The emulator answers in the query or by form_post; Entra also has fragment.
            raise AuthorizeError(
                "invalid_request", 70007, f"The response_mode '{response_mode}' is not supported."
            )
        scope = args.get("scope", "")
        if not scope.strip():
            raise AuthorizeError(
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'scope'.",
            )
        graph_scopes, oidc_scopes = resolve_scopes(scope, app)
        try:
            claims = parse_claims(args.get("claims"))
        except ValueError:
            # Microsoft's docs list no code for a malformed claims parameter.
            raise AuthorizeError(
                "invalid_request", 90023, "The 'claims' parameter is not valid JSON."
            ) from None
        challenge, method = args.get("code_challenge"), args.get("code_challenge_method")
        if app.require_pkce:
            self._check_pkce(challenge, method)
        prompt = args.get("prompt")
        if prompt == "none":
            # The emulator keeps no browser session, so a silent sign-in never succeeds.
            raise AuthorizeError(
                "login_required",
                50058,
                "A silent sign-in request was sent but no user is signed in.",
            )
        return AuthorizeRequest(
            client_id=client_id,
            redirect_uri=redirect_uri,
            graph_scopes=graph_scopes,
            oidc_scopes=oidc_scopes,
            state=state,
            nonce=args.get("nonce"),
            code_challenge=challenge,
            code_challenge_method=method or ("plain" if challenge else None),
            claims=claims,
            prompt=prompt,
            login_hint=args.get("login_hint"),
            response_mode=response_mode or "query",
        )

    @staticmethod
    def _check_pkce(challenge: str | None, method: str | None) -> None:
        # AADSTS50147 is the documented MissingCodeChallenge; Microsoft documents no separate
        # code for refusing "plain", which RFC 7636 makes the default when the method is left out.
        if not challenge:
            raise AuthorizeError(
                "invalid_request",
                50147,
                "This application requires Proof Key for Code Exchange: the request must "
                "contain 'code_challenge' and 'code_challenge_method=S256'.",
            )
        if (method or "plain") != "S256":
            raise AuthorizeError(
                "invalid_request",
                50147,
                f"The code_challenge_method '{method or 'plain'}' is not allowed for this "
                "application. Use 'S256'.",
            )
        if not 43 <= len(challenge) <= 128:
            raise AuthorizeError(
                "invalid_request", 501491, "Invalid size of Code_Challenge parameter."
            )

    def _redirect_error(
        self,
        redirect_uri: str,
        error: str,
        code: int,
        description: str,
        state: str | None,
        response_mode: str = "query",
    ) -> Response:
        params = {
            "error": error,
            "error_description": f"AADSTS{code}: {description}{_trace_suffix()}",
        }
        if state is not None:
            params["state"] = state
        return _answer(redirect_uri, params, response_mode)

    # --- the steps --------------------------------------------------------------------------

    def _login_action(self, base_url: str) -> str:
        return f"{base_url}/{self.sts.tenant.tenant_id}/login"

    def _credentials_page(
        self, base_url: str, flow: SignInFlow, *, login_hint: str = "", error: str | None = None
    ) -> Response:
        app = self.sts.tenant.app
        inner = (
            f"<p>to continue to {html.escape(app.display_name)}</p>\n"
            + _error_paragraph(error)
            + _field("username", "Username", "email", error, login_hint, autocomplete="username")
            + _field("password", "Password", "password", error, autocomplete="current-password")
        )
        body = "<h1>Sign in</h1>\n" + _form(self._login_action(base_url), flow, inner, "Sign in")
        return _page("Sign in", body, 200 if error is None else 400)

    def _mfa_page(self, base_url: str, flow: SignInFlow, error: str | None = None) -> Response:
        inner = (
            "<p>Enter the code displayed in the authenticator app on your mobile device.</p>\n"
            + _error_paragraph(error)
            + _field(
                "otc",
                "Code",
                "text",
                error,
                inputmode="numeric",
                autocomplete="one-time-code",
            )
        )
        body = "<h1>Enter code</h1>\n" + _form(self._login_action(base_url), flow, inner, "Verify")
        return _page("Enter code", body, 200 if error is None else 400)

    def _acrs_page(self, base_url: str, flow: SignInFlow) -> Response:
        names = self.sts.tenant.authentication_contexts
        contexts = "".join(
            f"<li>{html.escape(names.get(c, c))} ({html.escape(c)})</li>\n"
            for c in acrs_needed(flow)
        )
        inner = (
            "<p>Your organization requires additional verification for this sign-in, for the "
            "authentication context:</p>\n"
            f'<ul id="contexts">\n{contexts}</ul>\n'
        )
        body = "<h1>Additional verification required</h1>\n" + _form(
            self._login_action(base_url), flow, inner, "Continue"
        )
        return _page("Additional verification required", body)

    def login(self, request: Request, base_url: str, tenant_ref: str) -> Response:
        """Every sign-in form posts here; the flow's step says which one it was."""
        if not self.sts.knows_tenant(tenant_ref):
            return error_page(90002, f"Tenant '{tenant_ref}' not found.")
        form = request.form
        flow = self.store.flow(form.get("flow", ""))
        if flow is None:
            return error_page(
                50089, "Authentication failed due to flow token expired. Sign in again."
            )
        if "cancel" in form:
            return self._cancel(base_url, flow)
        if flow.step == "credentials":
            return self._credentials(
                base_url, flow, form.get("username", ""), form.get("password", "")
            )
        if flow.step == "mfa":
            user = self.sts.tenant.find_user(flow.user_id or "")
            if (
                user is None
                or user.mfa_code is None
                or not secrets.compare_digest(form.get("otc", "").strip(), user.mfa_code or "")
            ):
                return self._mfa_page(base_url, flow, WRONG_OTC)
            flow.amr = with_amr(flow, "mfa")
            return self._next(base_url, flow)
        # The acrs step: Continue satisfies the contexts asked for.
        flow.acrs = (*flow.acrs, *acrs_needed(flow))
        return self._next(base_url, flow)

    def _credentials(
        self, base_url: str, flow: SignInFlow, username: str, password: str
    ) -> Response:
        tenant = self.sts.tenant
        kind = kind_of(flow)
        client_id = tenant.app.client_id
        user = tenant.find_user(username.strip())
        if user is None:
            self.store.record(
                kind, client_id=client_id, user=None, succeeded=False, error_code=50034
            )
            return self._credentials_page(base_url, flow, login_hint=username, error=UNKNOWN_USER)
        if user.password is None or not secrets.compare_digest(password, user.password):
            self.store.record(
                kind, client_id=client_id, user=user, succeeded=False, error_code=50126
            )
            return self._credentials_page(
                base_url, flow, login_hint=username, error=INVALID_CREDENTIALS
            )
        if not user.account_enabled:
            self.store.record(
                kind, client_id=client_id, user=user, succeeded=False, error_code=50057
            )
            return self._credentials_page(base_url, flow, login_hint=username, error=USER_DISABLED)
        flow.user_id, flow.amr = user.id, ("pwd",)
        if flow.device is not None and tenant.sign_in.block_device_code:
            # Conditional Access evaluates after the first factor and blocks token issuance.
            flow.device.status = "blocked"
            self.store.end_flow(flow)
            self.store.record(
                kind, client_id=client_id, user=user, succeeded=False, error_code=53003
            )
            return error_page(53003, DEVICE_CODE_BLOCKED.removeprefix("AADSTS53003: "), 403)
        return self._next(base_url, flow)

    def _next(self, base_url: str, flow: SignInFlow) -> Response:
        user = self.sts.tenant.find_user(flow.user_id or "")
        assert user is not None
        tenant = self.sts.tenant
        if mfa_demanded(tenant, flow.claims) and user.mfa_code is None and "mfa" not in flow.amr:
            return self._fail(
                flow,
                "interaction_required",
                50079,
                "Due to a configuration change made by your administrator, or because you moved "
                "to a new location, you must enroll in multi-factor authentication.",
            )
        if mfa_needed(self.sts.tenant, flow, user):
            flow.step = "mfa"
            return self._mfa_page(base_url, flow)
        if acrs_needed(flow):
            flow.step = "acrs"
            return self._acrs_page(base_url, flow)
        return self._complete(flow)

    def _complete(self, flow: SignInFlow) -> Response:
        grant = grant_of(flow)
        user = self.sts.tenant.find_user(grant.user_id)
        self.store.end_flow(flow)
        kind = kind_of(flow)
        self.store.record(
            kind,
            client_id=grant.client_id,
            user=user,
            succeeded=True,
            amr=grant.amr,
            acrs=grant.acrs,
        )
        if flow.device is not None:
            flow.device.status, flow.device.grant = "approved", grant
            app_name = html.escape(self.sts.tenant.app.display_name)
            body = (
                f"<h1>{app_name}</h1>\n"
                f'<p id="done">You have signed in to the {app_name} application on your device. '
                "You may now close this window.</p>"
            )
            return _page("Signed in", body)
        request = flow.authorize
        assert request is not None
        code = self.store.issue_code(flow, grant)
        params = {"code": code}
        if request.state is not None:
            params["state"] = request.state
        params["session_state"] = grant.session_id
        return _answer(request.redirect_uri, params, request.response_mode)

    def _fail(self, flow: SignInFlow, error: str, code: int, description: str) -> Response:
        self.store.end_flow(flow)
        if flow.device is not None:
            flow.device.status = "declined"
            return error_page(code, description)
        request = flow.authorize
        assert request is not None
        return self._redirect_error(
            request.redirect_uri, error, code, description, request.state, request.response_mode
        )

    def _cancel(self, base_url: str, flow: SignInFlow) -> Response:
        user = self.sts.tenant.find_user(flow.user_id or "") if flow.user_id else None
        kind = kind_of(flow)
        self.store.record(
            kind,
            client_id=self.sts.tenant.app.client_id,
            user=user,
            succeeded=False,
            error_code=65004,
        )
        if flow.device is not None:
            self.store.end_flow(flow)
            flow.device.status = "declined"
            return _cancelled_page()
        return self._fail(flow, "access_denied", 65004, DECLINED.removeprefix("AADSTS65004: "))

    # --- /devicelogin -----------------------------------------------------------------------

    def device_login(self, request: Request, base_url: str) -> Response:
        if request.method == "GET":
            return self._device_code_page(base_url)
        if "cancel" in request.form:
            return _cancelled_page()
        user_code = request.form.get("otc", "")
        device = self.store.device_by_user_code(user_code)
        if device is None or device.status != "pending" or device.expires <= self.store.clock.now():
            return self._device_code_page(
                base_url, "That code didn't work. Check the code and try again.", user_code
            )
        flow = self.store.start_flow(device=device)
        return self._credentials_page(base_url, flow)

    def _device_code_page(
        self, base_url: str, error: str | None = None, value: str = ""
    ) -> Response:
        inner = (
            "<p>Enter the code displayed on your app or device.</p>\n"
            + _error_paragraph(error)
            + _field("otc", "Code", "text", error, value, autocomplete="off")
        )
        body = "<h1>Enter code</h1>\n" + _form(f"{base_url}/devicelogin", None, inner, "Next")
        return _page("Enter code", body, 200 if error is None else 400)
