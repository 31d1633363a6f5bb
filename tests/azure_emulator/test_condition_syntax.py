"""The syntax check of role-assignment conditions against the examples Microsoft documents ("Azure role
assignment condition format and syntax", "Delegate Azure role assignment management ... with conditions"),
and the malformed conditions it refuses, with the position of the offending text.
"""

from __future__ import annotations

import pytest

from azure_emulator import conditions

BLOBS = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs"


@pytest.mark.parametrize(
    "condition",
    [
        f"((!(ActionMatches{{'{BLOBS}/read'}})) OR "
        "(@Resource[Microsoft.Storage/storageAccounts/blobServices/containers:name] "
        "StringEquals 'blobs-example-container'))",
        f"(!(ActionMatches{{'{BLOBS}/read'}} AND NOT SubOperationMatches{{'Blob.List'}}))",
        f"@Request[{BLOBS}:versionId] DateTimeEquals '2022-06-01T00:00:00.0Z' "
        f"OR NOT Exists @Request[{BLOBS}:versionId]",
        f"@Request[{BLOBS}/tags:Project<$key_case_sensitive$>] "
        "ForAllOfAnyValues:StringEquals {'Cascade', 'Baker'}",
        "{'red', 'blue'} ForAnyOfAnyValues:StringEquals {'blue', 'green'}",
        "{10, 20} ForAllOfAllValues:NumericLessThan {25, 30}",
        "@Resource[Microsoft.Storage/storageAccounts:isHnsEnabled] BoolEquals true",
        "((!(ActionMatches{'Microsoft.Authorization/roleAssignments/write'})) || "
        "(@Request[Microsoft.Authorization/roleAssignments:RoleDefinitionId] "
        "ForAnyOfAnyValues:GuidEquals "
        "{ba92f5b4-2d11-453d-a403-e96b0029c9fe, 2a2b9908-6ea1-4ae2-8e65-a410df84e7d1}))",
        # Operators are matched case-insensitively, as in the Azure CLI's own example.
        "@Resource[Microsoft.Storage/storageAccounts/blobServices/containers:Name] stringEquals 'foo'",
    ],
)
def test_documented_conditions_parse(condition: str) -> None:
    conditions.check_syntax(condition)


@pytest.mark.parametrize(
    ("condition", "position"),
    [
        ("", 0),
        ("(ActionMatches{'a'}", 19),
        ("ActionMatches{'a'} AND ActionMatches{'b'} OR ActionMatches{'c'}", 42),
        ("@Resource[a:b] Resembles 'x'", 15),
        ("@Resource[a:b] StringEquals 'x", 28),
        ("@Somewhere[a:b] StringEquals 'x'", 0),
        ("@Resource[a:b] ForAnyOfAnyValues:BoolEquals true", 15),
        ("Exists 'x'", 7),
    ],
)
def test_malformed_conditions_are_refused_with_a_position(condition: str, position: int) -> None:
    with pytest.raises(conditions.ConditionError) as refused:
        conditions.check_syntax(condition)
    assert refused.value.position == position
