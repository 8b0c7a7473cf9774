"""Microsoft's own Graph SDK models read the emulator's answers as typed objects.

Kiota puts properties its v1.0 model does not know into ``additional_data``; finding none there
(besides ``@odata.*`` annotations) is evidence that the shapes match the v1.0 schema.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from kiota_abstractions.serialization import Parsable
from kiota_serialization_json.json_parse_node_factory import JsonParseNodeFactory
from msgraph.generated.models.expiration_pattern_type import ExpirationPatternType
from msgraph.generated.models.group_members import GroupMembers
from msgraph.generated.models.single_user import SingleUser
from msgraph.generated.models.unified_role_assignment_schedule_instance_collection_response import (  # noqa: E501
    UnifiedRoleAssignmentScheduleInstanceCollectionResponse,
)
from msgraph.generated.models.unified_role_assignment_schedule_request import (
    UnifiedRoleAssignmentScheduleRequest,
)
from msgraph.generated.models.unified_role_eligibility_schedule_instance_collection_response import (  # noqa: E501
    UnifiedRoleEligibilityScheduleInstanceCollectionResponse,
)
from msgraph.generated.models.unified_role_management_policy_approval_rule import (
    UnifiedRoleManagementPolicyApprovalRule,
)
from msgraph.generated.models.unified_role_management_policy_assignment_collection_response import (  # noqa: E501
    UnifiedRoleManagementPolicyAssignmentCollectionResponse,
)
from msgraph.generated.models.unified_role_management_policy_authentication_context_rule import (  # noqa: E501
    UnifiedRoleManagementPolicyAuthenticationContextRule,
)
from msgraph.generated.models.unified_role_management_policy_enablement_rule import (
    UnifiedRoleManagementPolicyEnablementRule,
)
from msgraph.generated.models.unified_role_management_policy_expiration_rule import (
    UnifiedRoleManagementPolicyExpirationRule,
)
from msgraph.generated.models.unified_role_management_policy_notification_rule import (  # noqa: E501
    UnifiedRoleManagementPolicyNotificationRule,
)
from msgraph.generated.models.unified_role_schedule_request_actions import (
    UnifiedRoleScheduleRequestActions,
)
from msgraph.generated.models.user_collection_response import UserCollectionResponse

from tests.emulator.conftest import (
    ADA,
    PRIVILEGED_ROLE_ADMIN,
    REQUESTS,
    SECURITY_READER,
    Graph,
    activation,
)


def _parse(content: bytes, model: Any) -> Any:
    node = JsonParseNodeFactory().get_root_parse_node("application/json", content)
    return node.get_object_value(model)


def _unknown_properties(value: Any, where: str = "") -> list[str]:
    """Paths of properties the SDK model did not recognise, anywhere in the object tree."""
    found: list[str] = []
    if isinstance(value, list):
        for index, item in enumerate(value):
            found += _unknown_properties(item, f"{where}[{index}]")
    elif isinstance(value, Parsable):
        extra = getattr(value, "additional_data", None) or {}
        found += [f"{where}.{k}" for k in extra if not k.startswith("@odata.")]
        for name, child in vars(value).items():
            if name != "additional_data" and not name.startswith("_"):
                found += _unknown_properties(child, f"{where}.{name}")
    return found


def test_request_parses_with_typed_action_status_and_schedule(graph: Graph) -> None:
    response = graph.post(REQUESTS, activation("adminAssign", ADA, SECURITY_READER,
                                               duration="PT1H30M"))
    request = _parse(response.content, UnifiedRoleAssignmentScheduleRequest)
    assert request.status == "Provisioned"
    assert request.action is UnifiedRoleScheduleRequestActions.AdminAssign
    assert request.schedule_info.expiration.type is ExpirationPatternType.AfterDuration
    assert request.schedule_info.expiration.duration == timedelta(hours=1, minutes=30)
    assert request.created_date_time.tzinfo is not None
    assert request.target_schedule_id == request.id
    assert _unknown_properties(request) == []


def test_instance_lists_parse(graph: Graph) -> None:
    graph.post(REQUESTS, activation("adminAssign", ADA, SECURITY_READER))
    eligible = _parse(
        graph.get("/roleManagement/directory/roleEligibilityScheduleInstances"
                  f"?$filter=principalId eq '{ADA}'&$expand=roleDefinition").content,
        UnifiedRoleEligibilityScheduleInstanceCollectionResponse,
    )
    assert eligible.odata_next_link is not None and len(eligible.value) == 2
    assert eligible.value[0].role_definition.display_name
    assert eligible.value[0].member_type == "Direct"
    assert _unknown_properties(eligible) == []

    active = _parse(
        graph.get("/roleManagement/directory/roleAssignmentScheduleInstances"
                  f"?$filter=principalId eq '{ADA}'").content,
        UnifiedRoleAssignmentScheduleInstanceCollectionResponse,
    )
    [instance] = active.value
    assert instance.assignment_type == "Assigned"
    assert instance.end_date_time - instance.start_date_time == timedelta(hours=1)
    assert _unknown_properties(active) == []


def test_policy_rules_parse_into_their_subclasses(graph: Graph) -> None:
    content = graph.get(
        "/policies/roleManagementPolicyAssignments?$filter=scopeId eq '/' and scopeType eq "
        f"'DirectoryRole' and roleDefinitionId eq '{PRIVILEGED_ROLE_ADMIN}'"
        "&$expand=policy($expand=rules)").content
    assignments = _parse(content, UnifiedRoleManagementPolicyAssignmentCollectionResponse)
    rules = {rule.id: rule for rule in assignments.value[0].policy.rules}
    assert isinstance(rules["Expiration_EndUser_Assignment"],
                      UnifiedRoleManagementPolicyExpirationRule)
    assert rules["Expiration_EndUser_Assignment"].maximum_duration == timedelta(hours=4)
    assert isinstance(rules["Enablement_EndUser_Assignment"],
                      UnifiedRoleManagementPolicyEnablementRule)
    assert isinstance(rules["AuthenticationContext_EndUser_Assignment"],
                      UnifiedRoleManagementPolicyAuthenticationContextRule)
    assert isinstance(rules["Notification_Approver_EndUser_Assignment"],
                      UnifiedRoleManagementPolicyNotificationRule)
    approval = rules["Approval_EndUser_Assignment"]
    assert isinstance(approval, UnifiedRoleManagementPolicyApprovalRule)
    assert approval.setting.is_approval_required is True
    approvers = approval.setting.approval_stages[0].primary_approvers
    assert [type(a) for a in approvers] == [SingleUser, GroupMembers]
    assert _unknown_properties(assignments) == []


def test_user_list_parses(graph: Graph) -> None:
    users = _parse(graph.get("/users?$filter=userPrincipalName eq 'ada@contoso.example'").content,
                   UserCollectionResponse)
    assert users.value[0].id == ADA
    assert _unknown_properties(users) == []
