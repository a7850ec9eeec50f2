"""Model drift: the provider answered with a model other than the one the agent pins.

"If your model vendor silently swapped a model variant tonight, would you catch it?" Each
model call's reported id (and fingerprint, where the provider gives one) is checked against
the pin, and against the earlier calls of the same tier in the run. Pure, so replay reaches
the same verdicts from the recorded responses.
"""

from __future__ import annotations

import re
from fnmatch import fnmatchcase

from tiergate.core._payloads import ModelSpec
from tiergate.core._records import ModelCall, ModelDrift

#: Suffixes providers add to a pinned alias for a dated snapshot or a revision.
_VARIANT = r"(-\d{4}-\d{2}-\d{2}|-\d{8}|@[\w.:-]+)?"


def accepts(spec: ModelSpec, reported: str) -> bool:
    """Whether ``reported`` is a model id the pin in ``spec`` accepts."""
    if spec.expected_models is not None:
        return any(fnmatchcase(reported, pattern) for pattern in spec.expected_models)
    return re.fullmatch(re.escape(spec.model) + _VARIANT, reported) is not None


def detect_drift(spec: ModelSpec, call: ModelCall, earlier: list[ModelCall]) -> ModelDrift | None:
    """The drift ``call`` shows, given the ``earlier`` calls of the same tier in this run."""
    reported, fingerprint = call.reported_model, call.fingerprint
    base = {"tier": call.tier, "requested": spec.model, "reported": reported}
    if not accepts(spec, reported):
        accepted = spec.expected_models or [f"{spec.model} or a dated variant"]
        return ModelDrift(
            kind="unexpected_model",
            fingerprint=fingerprint,
            message=f"tier {call.tier} pins {spec.model!r} (accepts {', '.join(accepted)}) "
            f"but the provider answered as {reported!r}",
            **base,
        )
    before = earlier[-1] if earlier else None
    if before is not None and before.reported_model != reported:
        return ModelDrift(
            kind="model_changed",
            fingerprint=fingerprint,
            message=f"tier {call.tier} answered as {before.reported_model!r} earlier in this run "
            f"and as {reported!r} now",
            **base,
        )
    if spec.fingerprints is not None and fingerprint not in spec.fingerprints:
        return ModelDrift(
            kind="unexpected_fingerprint",
            fingerprint=fingerprint,
            message=f"tier {call.tier} fingerprint {fingerprint!r} is not one of "
            f"{spec.fingerprints}",
            **base,
        )
    if (
        before is not None
        and fingerprint
        and before.fingerprint
        and before.fingerprint != fingerprint
    ):
        return ModelDrift(
            kind="fingerprint_changed",
            fingerprint=fingerprint,
            message=f"tier {call.tier} fingerprint changed from {before.fingerprint!r} to "
            f"{fingerprint!r} within this run",
            **base,
        )
    return None
