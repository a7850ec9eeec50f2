"""A run's model tiers and every call made to them: priced, charged, checked for drift."""

from __future__ import annotations

from tiergate.core._agent import AgentConfig
from tiergate.core._budget import BudgetLedger, answer_cost
from tiergate.core._drift import detect_drift
from tiergate.core._payloads import Classification, ModelResponse, ModelSpec
from tiergate.core._records import ModelCall
from tiergate.errors import RunInputError

#: Providers that call nothing outside the worker and hold no secret: a run may bring its
#: own (a script is the run's own answers), where the worker allows it.
OFFLINE_PROVIDERS = frozenset({"scripted", "demo"})


def chosen_model(
    config: AgentConfig, tier: str, override: ModelSpec, offline_allowed: bool
) -> ModelSpec:
    """The model a run's override picks for ``tier``, or RunInputError.

    Where models are called, and with which secret, is the agent's to say, never the run's:
    an override names a model the agent declares (its tier name or its model id) and gets
    that declaration whole: provider, base URL, key variable, pins. An offline model the
    run brings itself (a script, the demo's rules) is taken as given only where
    ``offline_allowed`` (dev, tests, evals and shadows; off on a production worker).
    """
    if tier not in config.models:
        raise RunInputError(
            f"model_overrides.{tier}: agent {config.name} has no model tier {tier!r} "
            f"(its tiers: {', '.join(sorted(config.models))})"
        )
    declared = config.models.get(override.model) or next(
        (d for d in config.models.values() if d.model == override.model), None
    )
    brings_its_own = override.script is not None or (
        "provider" in override.model_fields_set
        and (declared is None or declared.provider != override.provider)
    )
    if override.provider in OFFLINE_PROVIDERS and brings_its_own:
        if offline_allowed:
            return override
        raise RunInputError(
            f"model_overrides.{tier}: a {override.provider} model from the run, but this worker "
            "takes no offline models from runs (TIERGATE_OFFLINE_MODEL_OVERRIDES is for dev, "
            "test and eval workers); name a model the agent declares"
        )
    if declared is None:
        known = sorted({*config.models, *(d.model for d in config.models.values())})
        raise RunInputError(
            f"model_overrides.{tier}: {override.provider}/{override.model} is not a model agent "
            f"{config.name} declares; a run may pick one of: {', '.join(known)}"
        )
    for field in ("provider", "base_url", "api_key_env"):
        asked, kept = getattr(override, field), getattr(declared, field)
        if field in override.model_fields_set and asked != kept:
            raise RunInputError(
                f"model_overrides.{tier}.{field}: a run cannot choose where models are called "
                f"or with which secret ({field} is {kept!r} in agent {config.name}); name the "
                "model only, by tier or model id"
            )
    return declared


class ModelCalls:
    """The models a run may call (the agent's tiers, with the run's overrides) and its calls."""

    def __init__(
        self,
        config: AgentConfig,
        overrides: dict[str, ModelSpec],
        offline_allowed: bool = False,
    ) -> None:
        self.pricing = config.pricing
        chosen = {t: chosen_model(config, t, o, offline_allowed) for t, o in overrides.items()}
        self.specs: dict[str, ModelSpec] = {**config.models, **chosen}
        for tier in (t for t in (config.model_tier.executor, config.model_tier.router) if t):
            if self.specs[tier].model not in config.pricing:
                raise RunInputError(
                    f"model {self.specs[tier].model!r} (tier {tier}) has no price in agent "
                    f"{config.name}'s pricing table, so its cost budget cannot be enforced. "
                    "Add it under `pricing:`"
                )
        self.reported: dict[str, list[str]] = {}
        self.calls: list[ModelCall] = []
        self.carried: list[ModelCall] = []  # the last segment's, for drift and chaining

    def __getitem__(self, tier: str) -> ModelSpec:
        return self.specs[tier]

    def so_far(self) -> list[ModelCall]:
        return [*self.carried, *self.calls]

    def last_per_tier(self) -> list[ModelCall]:
        """The newest call of each tier: what drift checks in a next segment compare with."""
        return list({call.tier: call for call in self.so_far()}.values())

    def charge(
        self,
        tier: str,
        response: ModelResponse | Classification,
        step: int | None,
        ledger: BudgetLedger,
    ) -> ModelCall:
        """Prices a call by the model the provider reported (falling back to the one
        requested), charges it to ``ledger``, and checks it for drift."""
        spec = self.specs[tier]
        usage, model, attempt = response.usage, response.reported_model, response.attempt
        cost = answer_cost(self.pricing, spec.model, model, usage)
        ledger.charge_model(usage, cost, attempt)
        self.reported.setdefault(tier, [])
        if model not in self.reported[tier]:
            self.reported[tier].append(model)
        call = ModelCall(
            purpose="route" if step is None else "propose",
            step=step,
            tier=tier,
            provider=spec.provider,
            requested_model=spec.model,
            reported_model=model,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            cost_usd=cost,
            attempt=attempt,
            record_ref=response.record_ref,
            fingerprint=response.fingerprint,
        )
        call.drift = detect_drift(spec, call, [c for c in self.so_far() if c.tier == tier])
        self.calls.append(call)
        return call

    def requested_ids(self) -> dict[str, str]:
        return {tier: spec.model for tier, spec in self.specs.items()}

    def reported_ids(self) -> dict[str, list[str]]:
        return {tier: sorted(set(ids)) for tier, ids in self.reported.items()}
