"""Cedar policy files: loading and validating them, the schema generated from tools, inline rules."""

from tiergate.policies._loader import (
    KNOWN_ANNOTATIONS,
    Statement,
    build_bundle,
    parse_annotations,
    read_policy_file,
    split_statements,
)
from tiergate.policies._promote import promoted
from tiergate.policies._rules import (
    compile_rule,
    compile_rules,
)
from tiergate.policies._schema import (
    OUTPUT_FACTS_TYPE,
    cedar_schema,
    with_session,
)

__all__ = [
    "KNOWN_ANNOTATIONS",
    "OUTPUT_FACTS_TYPE",
    "Statement",
    "build_bundle",
    "cedar_schema",
    "compile_rule",
    "compile_rules",
    "parse_annotations",
    "promoted",
    "read_policy_file",
    "split_statements",
    "with_session",
]
