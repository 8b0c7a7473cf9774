"""Tells Slack what happened to a request: cards re-rendered from state, DMs to the requester.

Every card is a function of the request's state, so after any change each posted card is
rendered again and replaced with ``chat.update``; nothing patches blocks by hand.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.domain.elevation import SYSTEM, AuditEntry, ElevationRequest, Person, RequestStatus
from bot.domain.ports import (
    AccessPolicies,
    Clock,
    Event,
    PostedMessage,
    RulesSource,
    SlackDirectory,
    UnitOfWork,
)
from bot.domain.rules import PIM_APPROVERS, ApproverKind, ApproverSpec, EffectiveRules
from bot.use_cases.approvers import DirectoryApproverResolver
from handlers.blocks import (
    MessageContent,
    approver_followup,
    approver_nudge,
    extension_card,
    info_card,
    request_card,
    requester_message,
    review_card,
    superseded_message,
)

log = logging.getLogger(__name__)

APPROVER_CARD, INFO_CARD = "approver_card", "info_card"
REVIEW_CARD = "review_card"  # break-glass: acknowledged after the fact, updated in place
REVIEW_REMINDER = "review_reminder:"  # + the nudge round: a fresh message that pings
EXTENSION_CARD = "ext_card:"  # + the extension round
PIM_CARD = "pim_card:"  # + the stage of PIM's own approval it was posted for
DM_PREFIX = "dm:"
APPROVER_NUDGE = "approver_nudge"
REPLY_PREFIX = "reply:"  # + event + extension count: a thread reply under an approver card
# What approvers hear about, in a thread under the card they saw, once they approved.
_FOLLOWUP_EVENTS = frozenset({Event.EXTENDED, Event.END_MOVED, Event.DEACTIVATED, Event.FAILED})
RECENT_WINDOW = timedelta(days=30)
# DMs the requester gets; the rest (e.g. a partial approval) only update the cards.
_REQUESTER_EVENTS = frozenset(Event) - {
    Event.APPROVAL_RECORDED,
    Event.NUDGE,
    Event.REVIEW_NUDGE,
    Event.REVIEWED,
}


class SlackNotifier:
    def __init__(
        self,
        *,
        client: WebClient,
        uow: Callable[[], UnitOfWork],
        directory: SlackDirectory,
        approvers: DirectoryApproverResolver,
        rules: RulesSource,
        clock: Clock,
        access_policies: AccessPolicies | None = None,
    ) -> None:
        self._access_policies = access_policies
        self._client = client
        self._uow = uow
        self._directory = directory
        self._approvers = approvers
        self._rules = rules
        self._clock = clock

    def request_changed(self, request: ElevationRequest, event: Event) -> None:
        rules = self._rules.rules_for(request.role)
        if event is Event.SUBMITTED:
            self._post_cards(request, rules)
            if request.break_glass:
                self._alert_break_glass(request, rules)
        else:
            self._update_cards(request, rules)
        if event in (Event.AWAITING_PIM, Event.PIM_STAGE_APPROVED) and request.decidable_in_pim:
            self._post_pim_cards(request, rules)
        if event is Event.PIM_ESCALATED and request.decidable_in_pim:
            self._post_pim_cards(request, rules, escalation=True)
        if event is Event.EXTENSION_REQUESTED:
            self._post_extension_cards(request, rules)
        if event is Event.NUDGE:
            self._nudge(request, rules)
        if event is Event.REVIEW_NUDGE:
            self._remind_reviewers(request, rules)
        if event in _FOLLOWUP_EVENTS and request.approvals():
            self._follow_up(request, event)
        if event in _REQUESTER_EVENTS and not (
            event is Event.SUBMITTED and request.status is not RequestStatus.PENDING_APPROVAL
        ):
            self._dm_requester(request, event)

    # --- approver and info cards ------------------------------------------------------------------

    def _post_cards(self, request: ElevationRequest, rules: EffectiveRules) -> None:
        if request.status is RequestStatus.PENDING_APPROVAL:
            content = self._card(request, rules)
            targets = self._approval_targets(request, rules)
            if not targets:
                log.error("nobody to send the approval card to", extra={"request_id": request.id})
            for target in targets:
                self._post(request, target, content, APPROVER_CARD)
        elif rules.pim_decides(request.mode):
            pass  # PIM runs the approval: its card goes out once PIM holds the request
        elif rules.approvals_channel and not request.break_glass:
            # Activated without approval: approvers still see it (break glass: review cards).
            self._post(request, rules.approvals_channel, info_card(request), INFO_CARD)

    def _update_cards(self, request: ElevationRequest, rules: EffectiveRules) -> None:
        with self._uow() as uow:
            posted = uow.messages.list_for_request(request.id)
        for message in posted:
            if message.kind == APPROVER_CARD or message.kind.startswith(PIM_CARD):
                content = self._card(request, rules)
            elif message.kind == INFO_CARD:
                content = info_card(request)
            elif message.kind == REVIEW_CARD:
                content = review_card(request)
            elif message.kind.startswith(REVIEW_REMINDER):
                content = review_card(request, reminder=True)
            elif message.kind.startswith(EXTENSION_CARD):
                content = self._extension_card(request, int(message.kind[len(EXTENSION_CARD) :]))
            elif message.kind == APPROVER_NUDGE:
                content = approver_nudge(request, self._clock.now())
            else:
                continue  # the requester's DMs are folded when the next one goes out
            self._update(message, content)

    def _post_pim_cards(
        self, request: ElevationRequest, rules: EffectiveRules, *, escalation: bool = False
    ) -> None:
        """The card for PIM's own approval, to the approvers PIM lists for the current stage
        (users, and members of listed groups), in the approvals channel or by DM; on
        escalation, to the stage's escalation approvers (always by DM: they were not asked)."""
        assert request.pim_approval is not None
        stage = request.pim_approval.stage
        listed = rules.pim_stage(stage)
        who = (listed.escalation_approvers if escalation else listed.approvers) if listed else ()
        stage_rules = replace(rules, pim_approvers=who) if listed else rules
        targets = (
            [rules.approvals_channel]
            if rules.approvals_channel and not escalation
            else [
                u
                for u in self._approvers.slack_ids((PIM_APPROVERS,), stage_rules)
                if u != request.requester.slack_user
            ]
        )
        if not targets:
            log.error("nobody to send PIM's approval card to", extra={"request_id": request.id})
        content = self._card(request, rules)
        kind = f"{PIM_CARD}{stage}" + (":escalation" if escalation else "")
        for target in targets:
            self._post(request, target, content, kind)

    def _post_extension_cards(self, request: ElevationRequest, rules: EffectiveRules) -> None:
        content = self._extension_card(request, request.extension.round)
        kind = f"{EXTENSION_CARD}{request.extension.round}"
        for target in self._approval_targets(request, rules):
            self._post(request, target, content, kind)

    def _extension_card(self, request: ElevationRequest, round: int) -> MessageContent:
        names = [self._describe(spec) for spec in _specs(request)]
        return extension_card(request, round, approver_names=names)

    def _approval_targets(self, request: ElevationRequest, rules: EffectiveRules) -> list[str]:
        """The approvals channel, or else each approver by DM (never the requester)."""
        if rules.approvals_channel:
            return [rules.approvals_channel]
        return [
            u
            for u in self._approvers.slack_ids(_specs(request), rules)
            if u != request.requester.slack_user
        ]

    def _card(self, request: ElevationRequest, rules: EffectiveRules) -> MessageContent:
        with self._uow() as uow:
            recent = uow.requests.list_recent_elevations(
                request.requester, since=self._clock.now() - RECENT_WINDOW
            )
        return request_card(
            request,
            recent_elevations=[r for r in recent if r.id != request.id],
            approver_names=[self._describe(spec) for spec in _specs(request)],
            quorum_progress=(len(request.approvals()), request.quorum),
        )

    def _nudge(self, request: ElevationRequest, rules: EffectiveRules) -> None:
        # The approvers' own reminder (who asked, for what, how long ago, Approve / Deny), kept
        # current like a card; the requester is never among them.
        content = approver_nudge(request, self._clock.now())
        for user in self._approvers.slack_ids(_specs(request), rules):
            if user != request.requester.slack_user and not request.has_decided(
                Person(request.requester.slack_team, user)
            ):
                self._post(request, user, content, APPROVER_NUDGE)

    def _follow_up(self, request: ElevationRequest, event: Event) -> None:
        """A short thread reply under each approver card: the card changed, this pings."""
        content = approver_followup(request, event.value)
        # One reply per change per card, also when the delivery is retried.
        kind = f"{REPLY_PREFIX}{event.value}:{request.extension.count}"
        with self._uow() as uow:
            cards = [
                m for m in uow.messages.list_for_request(request.id) if m.kind == APPROVER_CARD
            ]
        for card in cards:
            try:
                self._post(request, card.channel, content, kind, thread_ts=card.ts)
            except SlackApiError as exc:
                log.warning(
                    "could not reply under a card: %s",
                    exc.response.get("error"),
                    extra={"request_id": request.id, "channel": card.channel},
                )

    # --- break glass: loud everywhere, acknowledged after the fact ------------------------------

    def _alert_break_glass(self, request: ElevationRequest, rules: EffectiveRules) -> None:
        """The approvals and security channels, and every approver of the role by DM."""
        channels = [
            c for c in dict.fromkeys((rules.approvals_channel, rules.security_channel)) if c
        ]
        reached, missed = self._post_review_cards(
            request,
            [*channels, *self._reviewers(request, rules)],
            review_card(request),
            REVIEW_CARD,
        )
        self._audit(
            request,
            "break_glass_notified",
            f"review card to {', '.join(reached) or 'nobody'}"
            + (f"; could not reach {', '.join(missed)}" if missed else ""),
        )
        if not reached:
            # Nobody heard: fail the delivery so the outbox tries again.
            raise RuntimeError("break-glass alert reached nobody")

    def _remind_reviewers(self, request: ElevationRequest, rules: EffectiveRules) -> None:
        if not request.awaits_review:
            return
        targets = self._reviewers(request, rules) or [
            c for c in dict.fromkeys((rules.security_channel, rules.approvals_channel)) if c
        ]
        # A reminder is a new message that pings (an edit would not), one per nudge round: the
        # round's next due time keys it, so a retried delivery of the same nudge posts once.
        round_key = (
            int(request.timers.review_due_at.timestamp())
            if request.timers.review_due_at
            else "last"
        )
        reached, _ = self._post_review_cards(
            request, targets, review_card(request, reminder=True), f"{REVIEW_REMINDER}{round_key}"
        )
        if not reached:
            raise RuntimeError("break-glass review reminder reached nobody")

    def _reviewers(self, request: ElevationRequest, rules: EffectiveRules) -> list[str]:
        return [
            u
            for u in self._approvers.slack_ids(_specs(request), rules)
            if u != request.requester.slack_user
        ]

    def _post_review_cards(
        self, request: ElevationRequest, targets: list[str], content: MessageContent, kind: str
    ) -> tuple[list[str], list[str]]:
        # One unreachable target (a channel the bot left) must not silence the others.
        reached: list[str] = []
        missed: list[str] = []
        for target in targets:
            try:
                self._post(request, target, content, kind)
                reached.append(target)
            except SlackApiError as exc:
                missed.append(target)
                log.error(
                    "could not post a break-glass review card: %s",
                    exc.response.get("error"),
                    extra={"request_id": request.id, "channel": target},
                )
        return reached, missed

    def _audit(self, request: ElevationRequest, action: str, detail: str) -> None:
        entry = AuditEntry(
            request.id,
            SYSTEM.key,
            action,
            request.status.value,
            request.status.value,
            self._clock.now(),
            detail,
        )
        with self._uow() as uow:
            uow.audit.add(entry)
            uow.commit()

    def _describe(self, spec: ApproverSpec) -> str:
        # Plain names, not <@mentions>: the card must not ping people by itself.
        if spec.kind is ApproverKind.SLACK_USER:
            profile = self._directory.user_profile(spec.value)
            return profile.real_name or spec.value if profile else spec.value
        return _describe_group(spec)

    # --- the requester ---------------------------------------------------------------------------

    def _dm_requester(self, request: ElevationRequest, event: Event) -> None:
        # Only the newest DM keeps buttons; earlier ones shrink to a current status line, so
        # a stale "Extend" or "active until 14:00" never lingers above the truth.
        with self._uow() as uow:
            earlier = [
                m for m in uow.messages.list_for_request(request.id) if m.kind.startswith(DM_PREFIX)
            ]
        for message in earlier:
            self._update(message, superseded_message(request))
        policies = (
            self._access_policies.for_role(request.role.role_definition_id)
            if self._access_policies is not None and event is Event.ACTIVE
            else None
        )
        content = requester_message(
            request, event, self._tz(request), access_policies=policies or ()
        )
        self._post(request, request.requester.slack_user, content, DM_PREFIX + event.value)

    def _tz(self, request: ElevationRequest) -> str | None:
        profile = self._directory.user_profile(request.requester.slack_user)
        return profile.tz if profile else None

    # --- Slack calls -----------------------------------------------------------------------------

    def _post(
        self,
        request: ElevationRequest,
        channel: str,
        content: MessageContent,
        kind: str,
        *,
        thread_ts: str | None = None,
    ) -> None:
        if not kind.startswith(DM_PREFIX):
            # One card per (request, target, kind): a retried delivery (an earlier attempt
            # posted here, then failed further on) updates that card instead of a second one.
            existing = self._posted(request.id, channel, kind)
            if existing is not None:
                self._update(existing, content)
                return
        response = self._client.chat_postMessage(
            channel=channel,
            text=content.text,
            blocks=content.blocks,
            unfurl_links=False,
            thread_ts=thread_ts,  # None is left out of the call
        )
        posted = PostedMessage(
            request.id, response["channel"], response["ts"], kind, self._clock.now(), channel
        )
        with self._uow() as uow:
            uow.messages.add(posted)
            uow.commit()

    def _posted(self, request_id: str, target: str, kind: str) -> PostedMessage | None:
        with self._uow() as uow:
            posted = uow.messages.list_for_request(request_id)
        return next(
            (
                m
                for m in posted
                if m.kind == kind
                and (m.target == target or (m.target is None and m.channel == target))
            ),
            None,
        )

    def _update(self, message: PostedMessage, content: MessageContent) -> None:
        try:
            self._client.chat_update(
                channel=message.channel, ts=message.ts, text=content.text, blocks=content.blocks
            )
        except SlackApiError as exc:
            # A deleted message or a channel the bot left must not stop the other updates.
            log.warning(
                "could not update a card: %s",
                exc.response.get("error"),
                extra={"request_id": message.request_id, "channel": message.channel},
            )


def _specs(request: ElevationRequest) -> list[ApproverSpec]:
    return [ApproverSpec.from_text(text) for text in request.approver_specs]


def _describe_group(spec: ApproverSpec) -> str:
    if spec.kind is ApproverKind.SLACK_USERGROUP:
        return f"@{spec.value}"
    if spec.kind is ApproverKind.ENTRA_GROUP:
        return f"members of Entra group {spec.value}"
    return "the approvers PIM lists for this role"
