"""Agent configs: the seed loads, errors name file, field and reason, rules compile to Cedar."""

from __future__ import annotations

from pathlib import Path

import pytest

from tiergate.config import compile_agent, load_agent, parse_agent_yaml
from tiergate.core import PolicyRule
from tiergate.demo import SUPPORT_TOOLS
from tiergate.errors import ConfigError
from tiergate.policies import compile_rule

SEED = (Path(__file__).parent / "data" / "seed_agent_config.yaml").read_text()
SEED_CEDAR = SEED.replace('engine: "opa"', 'engine: "cedar"')


class TestSeedConfig:
    def test_opa_engine_is_refused_with_the_fix(self) -> None:
        with pytest.raises(ConfigError) as error:
            parse_agent_yaml(SEED, "agent_config.yaml")
        assert error.value.file == "agent_config.yaml"
        assert error.value.field == "agent.policy.engine"
        assert "Set `engine: cedar`" in str(error.value)

    def test_loads_as_written_with_cedar(self) -> None:
        config = parse_agent_yaml(SEED_CEDAR, "seed.yaml")
        assert config.name == "support_refund_agent"
        assert config.model_tier.router == "small"
        assert config.budgets.max_total_tokens == 24000
        assert config.budgets.max_wall_time_seconds == 25
        assert config.tools.allowlist == [
            "crm.read_ticket",
            "orders.get_status",
            "payments.issue_refund",
        ]
        assert config.models["frontier"].provider == "demo"
        assert config.observability.log_fields[0] == "run_id"

    def test_rules_compile_to_cedar(self, tmp_path: Path) -> None:
        config = parse_agent_yaml(SEED_CEDAR, "seed.yaml")
        bundle = compile_agent(config, tmp_path / "seed.yaml", SUPPORT_TOOLS.specs)
        assert (
            'when { !(context.input.amount_usd.lessThanOrEqual(decimal("50.00"))) };'
            in bundle.policy.text
        )
        assert "unless { context.output.contains_pii == false };" in bundle.policy.text
        assert bundle.policy.annotations["refund_cap"]["approval"] == "human"
        assert bundle.policy.annotations["pii_redaction"]["alert"] == "pii_redaction"

    def test_version_defaults_to_content_hash(self) -> None:
        config = parse_agent_yaml(SEED_CEDAR, "seed.yaml")
        assert config.effective_version.startswith("sha256:")
        changed = parse_agent_yaml(SEED_CEDAR.replace("24000", "24001"), "seed.yaml")
        assert changed.content_hash() != config.content_hash()


class TestInvalidConfigs:
    @pytest.mark.parametrize(
        ("yaml_text", "field", "reason"),
        [
            (
                "agent:\n  name: a\n  budgets:\n    max_tool_calls: lots\n",
                "agent.budgets.max_tool_calls",
                "integer",
            ),
            (
                "agent:\n  name: a\n  budgets:\n    max_tokens: 5\n",
                "agent.budgets.max_tokens",
                "Extra inputs",
            ),
            ("agent:\n  name: a\n  model_tier:\n    executor: huge\n", "agent", "no such tier"),
            (
                "agent:\n  name: a\n  policy:\n    rules:\n      - id: r\n        condition: x\n",
                "agent.policy.rules[0].on_fail",
                "Field required",
            ),
        ],
    )
    def test_error_names_file_field_and_reason(
        self, yaml_text: str, field: str, reason: str
    ) -> None:
        with pytest.raises(ConfigError) as error:
            parse_agent_yaml(yaml_text, "bad.yaml")
        assert error.value.file == "bad.yaml"
        assert error.value.field == field
        assert reason in str(error.value)

    def test_not_yaml(self) -> None:
        with pytest.raises(ConfigError, match="not valid YAML"):
            parse_agent_yaml("agent: [", "bad.yaml")

    def test_unknown_tool_in_allowlist(self, tmp_path: Path) -> None:
        path = tmp_path / "a.yaml"
        path.write_text("agent:\n  name: a\n  tools:\n    allowlist: [crm.delete_everything]\n")
        with pytest.raises(ConfigError) as error:
            load_agent(str(path), None, SUPPORT_TOOLS.specs)
        assert error.value.field == "agent.tools.allowlist"

    def test_unknown_agent_name(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match="no agent config named 'ghost'"):
            load_agent("ghost", tmp_path, SUPPORT_TOOLS.specs)


def rule(
    condition: str, on_fail: str = "block", tool: str | None = "payments.issue_refund"
) -> PolicyRule:
    return PolicyRule.model_validate(
        {"id": "r", "tool": tool, "condition": condition, "on_fail": on_fail}
    )


class TestRuleCompiler:
    @pytest.mark.parametrize(
        ("condition", "cedar"),
        [
            ("input.amount_usd < 10.5", 'context.input.amount_usd.lessThan(decimal("10.5"))'),
            ("input.reason_code == 'damaged'", 'context.input.reason_code == "damaged"'),
            (
                'input.amount_usd >= 1 and not (input.reason_code != "goodwill")',
                '(context.input.amount_usd.greaterThanOrEqual(decimal("1.00")) && !(context.input.reason_code != "goodwill"))',
            ),
        ],
    )
    def test_conditions(self, condition: str, cedar: str) -> None:
        assert f"unless {{ {cedar} }};" in compile_rule(rule(condition), SUPPORT_TOOLS.specs, "f")

    def test_output_rule_without_tool_applies_to_every_emit(self) -> None:
        text = compile_rule(rule("output.size_bytes < 5000", tool=None), SUPPORT_TOOLS.specs, "f")
        assert 'forbid(principal, action == Action::"tiergate.emit", resource)' in text

    @pytest.mark.parametrize(
        ("condition", "message"),
        [
            ("input.amount_usd <= 'ten'", "cannot compare"),
            ("input.nonexistent == 1", "has no argument"),
            ("secret.x == 1", "paths start with"),
            ("input.amount_usd <= 5 and output.contains_pii == false", "not both"),
            ("input.amount_usd <=", "unexpected end"),
            ("output.mood == 'happy'", "unknown output fact"),
        ],
    )
    def test_bad_conditions_name_the_rule_field(self, condition: str, message: str) -> None:
        with pytest.raises(ConfigError, match=message) as error:
            compile_rule(rule(condition), SUPPORT_TOOLS.specs, "agent.policy.rules[0].condition")
        assert error.value.field == "agent.policy.rules[0].condition"

    def test_input_rule_needs_a_tool(self) -> None:
        with pytest.raises(ConfigError, match="need `tool:`"):
            compile_rule(rule("input.amount_usd < 5", tool=None), SUPPORT_TOOLS.specs, "f")

    def test_output_rule_cannot_escalate(self) -> None:
        with pytest.raises(ConfigError, match="cannot apply to an output rule"):
            compile_rule(
                rule("output.contains_pii == false", "escalate_to_human", None),
                SUPPORT_TOOLS.specs,
                "f",
            )


class TestRememberedLoads:
    """`agent__load` runs per run; its parses and compiles are remembered by the exact
    inputs (`tiergate.config._load._Memo`), so an edit is seen by the very next load."""

    def agent(self, tmp_path: Path, version: str, policy: str) -> Path:
        (tmp_path / "p.cedar").write_text(policy)
        path = tmp_path / "a.yaml"
        path.write_text(
            "agent:\n  name: a\n  version: " + version + "\n"
            "  tools: {allowlist: [crm.read_ticket]}\n  policy: {files: [p.cedar]}\n"
        )
        return path

    def test_an_edit_of_the_same_size_at_once_is_seen(self, tmp_path: Path) -> None:
        allow = '@id("r1")\npermit(principal, action, resource);\n'
        self.agent(tmp_path, "v1", allow)
        first = load_agent("a", tmp_path, SUPPORT_TOOLS.specs)
        assert load_agent("a", tmp_path, SUPPORT_TOOLS.specs) == first  # remembered
        self.agent(tmp_path, "v2", allow.replace("r1", "r2"))  # same sizes, same instant
        second = load_agent("a", tmp_path, SUPPORT_TOOLS.specs)
        assert second.config.version == "v2"
        assert "r2" in second.policy.text
        assert second.policy.version != first.policy.version

    def test_a_bundle_handed_out_is_a_copy(self, tmp_path: Path) -> None:
        self.agent(tmp_path, "v1", '@id("r1")\npermit(principal, action, resource);\n')
        bundle = load_agent("a", tmp_path, SUPPORT_TOOLS.specs)
        bundle.config.tools.allowlist.append("users.delete_data")  # lists stay mutable
        bundle.disabled_tools.append("crm.read_ticket")
        again = load_agent("a", tmp_path, SUPPORT_TOOLS.specs)
        assert again.config.tools.allowlist == ["crm.read_ticket"]
        assert again.disabled_tools == []

    def test_other_tool_specs_compile_again(self, tmp_path: Path) -> None:
        path = self.agent(tmp_path, "v1", '@id("r1")\npermit(principal, action, resource);\n')
        config = parse_agent_yaml(path.read_text(), str(path))
        specs = dict(SUPPORT_TOOLS.specs)
        before = compile_agent(config, path, specs)
        read = specs["crm.read_ticket"]
        specs["crm.read_ticket"] = read.model_copy(update={"tier": 1})
        after = compile_agent(config, path, specs)
        assert before.tools["crm.read_ticket"].tier == 0
        assert after.tools["crm.read_ticket"].tier == 1
        assert after.tool_schemas_hash != before.tool_schemas_hash
