"""Scripted sign-in through the emulator's pages, for end-to-end tests and ``pimbot demo``
(which has no browser): GET the page, fill in the forms, POST them back over HTTPS.

``sign_in`` returns the final redirect (``redirect_uri?code=...&state=...``, or an
``error=...`` redirect) without following it, so the caller hands it to its own callback or to
msal's ``acquire_token_by_auth_code_flow``. With ``response_mode=form_post`` the last page is a
form that would POST those fields to the redirect URI: ``sign_in`` returns them the same way,
as the query of the redirect URI (``sign_in_response`` tells the two apart).
``sign_in_device`` completes a device-code sign-in on ``verification_uri``. Both raise
``SignInError`` with the page's error text (e.g. ``AADSTS50126: ...``) when a page refuses;
passwords and codes never appear in it.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import httpx

_MAX_STEPS = 8  # credentials, MFA, authentication context, with room to spare


class SignInError(Exception):
    """A sign-in page refused: ``message`` is the error text the page shows."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message, self.status = message, status


@dataclass
class Form:
    """The one form of a sign-in page: where it posts and its named inputs and buttons."""

    action: str
    fields: dict[str, str] = field(default_factory=dict)
    buttons: tuple[str, ...] = ()
    error: str | None = None  # the text of the element with id="error"
    ids: frozenset[str] = frozenset()  # every element id on the page


@dataclass(frozen=True)
class AuthorizationResponse:
    """Where the sign-in ends: the redirect URI and the fields, and how they are sent."""

    redirect_uri: str
    params: dict[str, str]
    method: str  # "GET" (a 302 with the query) or "POST" (form_post)

    @property
    def url(self) -> str:
        """The redirect URI with the fields as its query (what a 302 would point at)."""
        separator = "&" if urlsplit(self.redirect_uri).query else "?"
        return f"{self.redirect_uri}{separator}{urlencode(self.params)}"

    def __repr__(self) -> str:  # the code is a secret
        return f"AuthorizationResponse(redirect_uri={self.redirect_uri!r}, method={self.method!r})"


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}
        self.buttons: list[str] = []
        self.ids: set[str] = set()
        self._error_depth = 0
        self.error_parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        if "id" in attributes:
            self.ids.add(attributes["id"])
        if self._error_depth:
            self._error_depth += 1
        elif attributes.get("id") == "error":
            self._error_depth = 1
        if tag == "form" and self.action is None:
            self.action = attributes.get("action", "")
        elif tag == "input" and attributes.get("name"):
            self.fields[attributes["name"]] = attributes.get("value", "")
        elif tag == "button" and attributes.get("name"):
            self.buttons.append(attributes["name"])

    def handle_endtag(self, tag: str) -> None:
        if self._error_depth:
            self._error_depth -= 1

    def handle_data(self, data: str) -> None:
        if self._error_depth:
            self.error_parts.append(data)


def parse_form(page: str, base_url: str) -> Form:
    """The form of a sign-in page (``action`` made absolute against ``base_url``)."""
    parser = _FormParser()
    parser.feed(page)
    error = "".join(parser.error_parts).strip() or None
    return Form(
        action=urljoin(base_url, parser.action or ""),
        fields=parser.fields,
        buttons=tuple(parser.buttons),
        error=error,
        ids=frozenset(parser.ids),
    )


@contextmanager
def _client(
    http: httpx.Client | None, verify: ssl.SSLContext | str | bool
) -> Iterator[httpx.Client]:
    if http is not None:
        yield http
        return
    with httpx.Client(verify=verify, trust_env=False, timeout=10) as client:
        yield client


def _refused(response: httpx.Response, form: Form) -> SignInError:
    return SignInError(
        form.error or f"the sign-in page answered {response.status_code}", response.status_code
    )


def _fill(
    form: Form, response: httpx.Response, *, username: str, password: str, mfa_code: str | None
) -> dict[str, str]:
    """The next POST of the sign-in, from what the page asks for."""
    data = {name: value for name, value in form.fields.items() if name in ("flow",)}
    if "password" in form.fields:
        if form.error:
            raise _refused(response, form)
        data.update(username=username, password=password)
    elif "otc" in form.fields:
        if form.error:
            raise _refused(response, form)
        if mfa_code is None:
            raise SignInError("the sign-in asks for an MFA code and none was given", 0)
        data["otc"] = mfa_code
    elif "contexts" not in form.ids:
        raise _refused(response, form)
    data["submit"] = "1"
    return data


def sign_in(
    authorize_url: str,
    *,
    username: str,
    password: str,
    mfa_code: str | None = None,
    http: httpx.Client | None = None,
    verify: ssl.SSLContext | str | bool = True,
) -> str:
    """Sign in as ``username`` at ``authorize_url``; the final redirect URL, not followed."""
    return sign_in_response(
        authorize_url,
        username=username,
        password=password,
        mfa_code=mfa_code,
        http=http,
        verify=verify,
    ).url


def sign_in_response(
    authorize_url: str,
    *,
    username: str,
    password: str,
    mfa_code: str | None = None,
    http: httpx.Client | None = None,
    verify: ssl.SSLContext | str | bool = True,
) -> AuthorizationResponse:
    """Like ``sign_in``, keeping apart a 302 (query) and a form_post answer."""
    with _client(http, verify) as client:
        response = client.get(authorize_url, follow_redirects=False)
        for _ in range(_MAX_STEPS):
            if response.is_redirect:
                parts = urlsplit(str(response.headers["Location"]))
                base = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
                return AuthorizationResponse(base, dict(parse_qsl(parts.query)), "GET")
            form = parse_form(response.text, str(response.url))
            if "response" in form.ids:
                return AuthorizationResponse(form.action, dict(form.fields), "POST")
            if not form.fields.get("flow"):
                raise _refused(response, form)
            data = _fill(form, response, username=username, password=password, mfa_code=mfa_code)
            response = client.post(form.action, data=data, follow_redirects=False)
        raise SignInError("the sign-in did not finish", response.status_code)


def sign_in_device(
    verification_uri: str,
    user_code: str,
    *,
    username: str,
    password: str,
    mfa_code: str | None = None,
    http: httpx.Client | None = None,
    verify: ssl.SSLContext | str | bool = True,
) -> None:
    """Enter ``user_code`` at ``verification_uri`` and sign in; SignInError if a page refuses."""
    with _client(http, verify) as client:
        page = client.get(verification_uri, follow_redirects=False)
        form = parse_form(page.text, str(page.url))
        response = client.post(
            form.action, data={"otc": user_code, "submit": "1"}, follow_redirects=False
        )
        for _ in range(_MAX_STEPS):
            form = parse_form(response.text, str(response.url))
            if "done" in form.ids:
                return
            if not form.fields.get("flow"):
                raise _refused(response, form)
            data = _fill(form, response, username=username, password=password, mfa_code=mfa_code)
            response = client.post(form.action, data=data, follow_redirects=False)
        raise SignInError("the sign-in did not finish", response.status_code)
