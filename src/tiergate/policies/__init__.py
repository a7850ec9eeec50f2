"""Cedar policies: the schema generated from tools, the loader and the pinned bundle."""

from tiergate.policies._approvers import APPROVER_SCHEMA, ApproverGate
from tiergate.policies._bundle import PolicyBundle, PolicySource, no_entities, parsed_policies
from tiergate.policies._cedar_types import (
    cedar_type,
    decimal_fields,
    to_cedar_record,
    to_cedar_value,
)
from tiergate.policies._loader import (
    APPROVAL_LEVELS,
    build_bundle,
    read_policy_file,
    split_statements,
)
from tiergate.policies._schema import EMIT_ACTION, FINAL_ANSWER_RESOURCE, cedar_schema

__all__ = [
    "APPROVAL_LEVELS",
    "APPROVER_SCHEMA",
    "EMIT_ACTION",
    "FINAL_ANSWER_RESOURCE",
    "ApproverGate",
    "PolicyBundle",
    "PolicySource",
    "build_bundle",
    "cedar_schema",
    "cedar_type",
    "decimal_fields",
    "no_entities",
    "parsed_policies",
    "read_policy_file",
    "split_statements",
    "to_cedar_record",
    "to_cedar_value",
]
