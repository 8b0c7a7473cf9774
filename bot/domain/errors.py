"""The error tree pimbot's domain and adapters raise.

    PimbotError                      anything pimbot knows how to explain to a person
    ├── ConfigurationError           settings or policy file invalid (lists every problem)
    ├── ElevationError               the request lifecycle said no
    │   ├── InvalidTransition        that action is not allowed in the current state
    │   │   └── AlreadyDecided       somebody else decided first (double click, race)
    │   ├── NotAuthorized            the person may not do this
    │   ├── RequestNotFound
    │   ├── ValidationFailed         bad input, with one message per field
    │   └── ConcurrentUpdate         storage saw a newer version (callers reload and retry)
    ├── IdentityError                Slack user cannot be mapped or is not a full member
    └── PimError                     Microsoft Graph / PIM said no or could not be reached
        ├── PimUnavailable           timeouts, 5xx, throttling that outlived the retries
        ├── PimAuthError             token could not be obtained (AADSTS codes)
        └── PimRejected              Graph refused the call (carries Graph's code)

Every error carries ``user_message``: text that is safe to show in Slack (no secrets, no
stack traces) and that says what to do next.
"""

from __future__ import annotations

from collections.abc import Mapping


class PimbotError(Exception):
    """Base of every error pimbot explains to people."""

    def __init__(self, user_message: str) -> None:
        super().__init__(user_message)
        self.user_message = user_message


class ConfigurationError(PimbotError):
    """Start-up configuration is invalid; ``problems`` lists every one of them."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"pimbot cannot start: {len(self.problems)} configuration problem(s)\n{lines}"
        )


class ElevationError(PimbotError):
    """The request lifecycle refused an action."""


class InvalidTransition(ElevationError):
    """The action is not allowed from the request's current status."""


class AlreadyDecided(InvalidTransition):
    """Another decision won: a double click, a replay or a race between approvers."""


class NotAuthorized(ElevationError):
    """The acting person may not perform this action."""


class RequestNotFound(ElevationError):
    """No request with that id."""


class ConcurrentUpdate(ElevationError):
    """The stored request changed since it was read (optimistic lock lost)."""

    def __init__(self, request_id: str) -> None:
        super().__init__("This request was changed by someone else at the same moment. Try again.")
        self.request_id = request_id


class LiveRequestExists(ElevationError):
    """Storage refused a second live request of one person for one role (a racing submit)."""

    def __init__(self, role_name: str) -> None:
        super().__init__(f"You already have a live request for {role_name}.")


class ValidationFailed(ElevationError):
    """Bad input; ``field_errors`` maps a form field to a message a person understands."""

    def __init__(self, field_errors: Mapping[str, str]) -> None:
        self.field_errors = dict(field_errors)
        super().__init__("; ".join(self.field_errors.values()))


class IdentityError(PimbotError):
    """The Slack user cannot act: not linked, guest, external, bot or deactivated."""


class LinkConflict(IdentityError):
    """The Entra user is already linked to another Slack account (one person, one link)."""

    def __init__(self, entra_id: str, linked_to: str | None) -> None:
        self.entra_id, self.linked_to = entra_id, linked_to
        super().__init__(
            "That Microsoft Entra account is already linked to another Slack account, and one "
            "person may have only one. Ask your pimbot admin to check the links (`pimbot link`)."
        )


class PimError(PimbotError):
    """Microsoft Graph / PIM refused a call or could not be reached."""

    def __init__(self, user_message: str, *, code: str | None = None, status: int | None = None):
        super().__init__(user_message)
        self.code = code
        self.status = status


class PimUnavailable(PimError):
    """Graph did not answer usefully in time (timeouts, 5xx, throttling past the retries)."""


class PimAuthError(PimError):
    """No token: wrong credentials, missing consent, or the tenant refused the app."""


class PimRejected(PimError):
    """Graph refused the request; ``code`` is Graph's error code."""


class PolicyValidationFailed(PimRejected):
    """PIM's RoleAssignmentRequestPolicyValidationFailed; ``failed_rules`` as Graph named them."""

    def __init__(self, user_message: str, *, failed_rules: tuple[str, ...], status: int = 400):
        super().__init__(
            user_message, code="RoleAssignmentRequestPolicyValidationFailed", status=status
        )
        self.failed_rules = failed_rules


class AssignmentExists(PimRejected):
    """RoleAssignmentExists: the role is already active (or a duplicate request is pending)."""


class AssignmentNotFound(PimRejected):
    """RoleAssignmentDoesNotExist: nothing active to deactivate or extend."""


class ActiveDurationTooShort(PimRejected):
    """PIM refuses deactivation within five minutes of activation."""


class AuthenticationContextRequired(PimRejected):
    """RoleAssignmentRequestAcrsValidationFailed; ``claims`` is the decoded claims challenge."""

    def __init__(self, user_message: str, *, claims: str | None, status: int = 400):
        super().__init__(
            user_message, code="RoleAssignmentRequestAcrsValidationFailed", status=status
        )
        self.claims = claims


class PimThrottled(PimUnavailable):
    """Graph kept answering 429 after the bounded retries."""


class SealBroken(PimbotError):
    """A sealed value did not open: forged, damaged, or sealed with a key no longer held."""


class SignInFailed(PimbotError):
    """A person's sign-in (``/pim connect``) did not complete; ``code`` names why for logs."""

    def __init__(self, user_message: str, *, code: str) -> None:
        super().__init__(user_message)
        self.code = code


class SignInRequired(PimbotError):
    """Acting as the person needs a (fresh or stronger) sign-in; ``claims`` is the claims
    challenge the new sign-in must satisfy (JSON), if any."""

    def __init__(self, user_message: str, claims: str | None = None) -> None:
        super().__init__(user_message)
        self.claims = claims
