"""Graph's directory endpoints pimbot needs: users, groups, members and memberships."""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Response

from stand_ins.graph_emulator.errors import bad_request, not_found
from stand_ins.graph_emulator.odata_responses import (
    GraphCall,
    apply_filter,
    collection,
    entity,
)
from stand_ins.graph_emulator.tenant import Group, Tenant, User

# Properties Graph returns for a user when $select is not given (user-get docs).
_DEFAULT_USER_PROPERTIES = (
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
)


def user_json(user: User) -> dict[str, Any]:
    """Every property the emulator knows; callers trim to the default set or to $select."""
    return {
        "businessPhones": [],
        "displayName": user.display_name,
        "givenName": user.given_name,
        "jobTitle": user.job_title,
        "mail": user.mail,
        "mobilePhone": None,
        "officeLocation": None,
        "preferredLanguage": None,
        "surname": user.surname,
        "userPrincipalName": user.user_principal_name,
        "id": user.id,
        "accountEnabled": user.account_enabled,
        "userType": user.user_type,
        "otherMails": [],
    }


def _default_view(call: GraphCall, item: dict[str, Any]) -> dict[str, Any]:
    if call.select() is not None:
        return item
    return {
        k: v for k, v in item.items() if k.startswith("@odata.") or k in _DEFAULT_USER_PROPERTIES
    }


def group_json(group: Group) -> dict[str, Any]:
    return {
        "id": group.id,
        "deletedDateTime": None,
        "classification": None,
        "description": group.description,
        "displayName": group.display_name,
        "groupTypes": [],
        "isAssignableToRole": group.is_assignable_to_role,
        "mail": None,
        "mailEnabled": False,
        "mailNickname": group.display_name.replace(" ", ""),
        "securityEnabled": True,
        "visibility": "Private",
    }


def directory_object(tenant: Tenant, object_id: str) -> dict[str, Any] | None:
    """A user or group with its ``@odata.type``, as in members lists and ``principal``."""
    user = tenant.find_user(object_id)
    if user is not None:
        return {"@odata.type": "#microsoft.graph.user", **user_json(user)}
    group = tenant.find_group(object_id)
    if group is not None:
        return {"@odata.type": "#microsoft.graph.group", **group_json(group)}
    return None


def _user(call: GraphCall, ref: str) -> User:
    user = call.tenant.find_user(ref)
    if user is None:
        raise not_found(ref)
    return user


def get_user(call: GraphCall, ref: str) -> Response:
    fields = call.select()
    fragment = f"users({','.join(fields)})/$entity" if fields else "users/$entity"
    return entity(call, call.context(fragment), _default_view(call, user_json(_user(call, ref))))


def get_me(call: GraphCall) -> Response:
    if not call.caller.is_user:
        raise bad_request("/me request is only valid with delegated authentication flow.")
    return get_user(call, call.caller.object_id)


def list_users(call: GraphCall) -> Response:
    users = apply_filter(call, [user_json(u) for u in call.tenant.users])
    return collection(call, call.context("users"), users, lambda u: _default_view(call, u))


def user_groups(call: GraphCall, ref: str) -> Response:
    """memberOf and transitiveMemberOf (role-assignable groups cannot nest, so they agree)."""
    user = _user(call, ref)
    groups = [
        {"@odata.type": "#microsoft.graph.group", **group_json(g)}
        for g in call.tenant.groups_of(user.id)
    ]
    return collection(call, call.context("directoryObjects"), apply_filter(call, groups))


def _group(call: GraphCall, group_id: str) -> Group:
    group = next((g for g in call.tenant.groups if g.id == group_id.lower()), None)
    if group is None:
        raise not_found(group_id)
    return group


def get_group(call: GraphCall, group_id: str) -> Response:
    return entity(call, call.context("groups/$entity"), group_json(_group(call, group_id)))


def group_members(call: GraphCall, group_id: str) -> Response:
    group = _group(call, group_id)
    members = [
        m
        for i in call.tenant.member_ids(group)
        if (m := directory_object(call.tenant, i)) is not None
    ]
    return collection(
        call,
        call.context("directoryObjects"),
        apply_filter(call, members),
        lambda m: _default_view(call, m),
    )
