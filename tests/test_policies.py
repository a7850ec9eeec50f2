"""Loading Cedar files: parse and validation errors name the file and line."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from tiergate.demo import SUPPORT_TOOLKIT, SUPPORT_TOOLS
from tiergate.errors import PolicyError
from tiergate.policies import build_bundle, cedar_schema, split_statements
from tiergate.settings import Settings
from tiergate.worker import build_worker

SCHEMA = cedar_schema(SUPPORT_TOOLS.specs.values())
GOOD = '@id("a")\npermit(principal, action == Action::"crm.read_ticket", resource);\n'


def test_statements_keep_their_start_lines() -> None:
    text = '// header ; not a statement\n@id("a")\npermit(principal, action, resource)\nwhen { "x;" == "x;" };\n\n@id("b") forbid(principal, action, resource);'
    statements = split_statements(text)
    assert [s.line for s in statements] == [2, 6]
    assert len(statements) == 2


def test_syntax_error_names_file_and_line() -> None:
    broken = GOOD + '\n@id("b")\npermit(principal, action, resource) when { context.x >> 2 };\n'
    with pytest.raises(PolicyError) as error:
        build_bundle([("support.cedar", broken)], SCHEMA)
    assert (error.value.file, error.value.line) == ("support.cedar", 4)
    assert "does not parse" in str(error.value)


def test_schema_violation_names_file_and_line() -> None:
    wrong = (
        GOOD
        + '@id("b")\npermit(principal, action == Action::"payments.issue_refund", resource)\nwhen { context.input.amount > 5 };\n'
    )
    with pytest.raises(PolicyError) as error:
        build_bundle([("p.cedar", wrong)], SCHEMA)
    assert (error.value.file, error.value.line) == ("p.cedar", 3)
    assert "does not validate" in str(error.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("permit(principal, action, resource);", "no @id"),
        (GOOD + GOOD, "used twice"),
        ('@id("x") @approval("maybe") permit(principal, action, resource);', "not a known level"),
        ('@id("x") @priority("high") permit(principal, action, resource);', "unknown annotations"),
    ],
)
def test_annotation_rules(text: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        build_bundle([("p.cedar", text)], SCHEMA)


def test_version_is_a_content_hash() -> None:
    one = build_bundle([("a.cedar", GOOD)], SCHEMA)
    assert one.version == build_bundle([("elsewhere/a.cedar", GOOD)], SCHEMA).version
    assert one.version != build_bundle([("a.cedar", GOOD.replace('"a"', '"z"'))], SCHEMA).version
    assert one.sources[0].policy_ids == ["a"]


async def test_worker_refuses_to_start_on_a_bad_policy(
    env: WorkflowEnvironment, tmp_path: Path
) -> None:
    (tmp_path / "agents").mkdir()
    (tmp_path / "agents" / "bad.cedar").write_text(
        GOOD + '\n@id("c")\nforbid(principal, action resource);\n'
    )
    (tmp_path / "agents" / "bad.yaml").write_text(
        "agent:\n  name: bad\n  policy:\n    files: [bad.cedar]\n"
    )
    settings = Settings(offline_model_overrides=True, home=tmp_path, agents_dir=tmp_path / "agents")
    with pytest.raises(PolicyError) as error:
        build_worker(env.client, settings, SUPPORT_TOOLKIT)
    assert error.value.file is not None
    assert error.value.file.endswith("bad.cedar")
    assert error.value.line == 4
