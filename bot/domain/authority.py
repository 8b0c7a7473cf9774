"""Who may decide a request: domain policy, checked on every click from the clicking person."""

from __future__ import annotations

from dataclasses import dataclass

from bot.domain.elevation import ElevationRequest, Person
from bot.domain.errors import NotAuthorized


@dataclass(frozen=True)
class ApproverSet:
    """The people allowed to approve one request, resolved from its approver specs."""

    slack_users: frozenset[str] = frozenset()
    entra_users: frozenset[str] = frozenset()
    # Slack and Entra ids the policy file names one by one (slack_user, entra_user): the only
    # way an Entra guest may approve.
    named: frozenset[str] = frozenset()
    # The policy file's approver_link: operator_or_sign_in refuses email-made links.
    strong_link_required: bool = False

    def __contains__(self, person: object) -> bool:
        if not isinstance(person, Person):
            return False
        return person.slack_user in self.slack_users or (
            person.entra_id is not None and person.entra_id in self.entra_users
        )

    def names(self, person: Person) -> bool:
        return person.slack_user in self.named or (
            person.entra_id is not None and person.entra_id in self.named
        )

    def union(self, other: ApproverSet) -> ApproverSet:
        return ApproverSet(
            self.slack_users | other.slack_users,
            self.entra_users | other.entra_users,
            self.named | other.named,
            self.strong_link_required or other.strong_link_required,
        )

    def __bool__(self) -> bool:
        return bool(self.slack_users or self.entra_users)


def is_same_person(a: Person, b: Person) -> bool:
    """Two Slack accounts are the same person when their Slack ids or their Entra ids match."""
    return a.is_same_as(b)


def check_may_decide(request: ElevationRequest, actor: Person, approvers: ApproverSet) -> None:
    """Raise NotAuthorized unless ``actor`` may approve or deny ``request``."""
    if is_same_person(actor, request.requester):
        raise NotAuthorized("You cannot approve or deny your own request.")
    if actor not in approvers:
        raise NotAuthorized(
            f"You are not an approver for {request.role.display_name}, so you cannot decide "
            "this request."
        )
    if actor.guest and not approvers.names(actor):
        raise NotAuthorized(
            "Your Microsoft Entra account is a guest account, and guests approve only where "
            "the policy file names them one by one. Ask your pimbot admin."
        )
    if approvers.strong_link_required and actor.linked_by == "email":
        raise NotAuthorized(
            f"Approvers of {request.role.display_name} must be linked to Entra by an admin or "
            "by signing in, not by their Slack email. Ask an admin to link you with "
            "`pimbot link`."
        )


def check_is_requester(request: ElevationRequest, actor: Person) -> None:
    """Extend, deactivate and cancel belong to the person who holds the role."""
    if not is_same_person(actor, request.requester):
        raise NotAuthorized(f"Only {request.requester.mention} can change this elevation.")
