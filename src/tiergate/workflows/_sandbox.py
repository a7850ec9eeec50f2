"""The workflow sandbox configuration shared by workers and replayers.

The run loop (``tiergate.workflows``) stays inside Temporal's sandbox, so every call it makes
is checked for non-determinism (``datetime.now``, ``random``, I/O) on every run, in
production as in tests and replays. It is re-imported for every workflow instance; with its
bytecode cached (``ensure_bytecode``) that costs no measurable throughput against a
baseline treated the same way (BENCHMARKS.md, "Overhead against bare Temporal"). A mode
that passed the loop through as well was measured and bought nothing reliable (its paired
rounds ran slower than the sandboxed loop's), so it is gone.

tiergate's pure modules are passed through: they are deterministic, start nothing at import
time, and re-importing them (and cedarpy, pydantic, the WebAuthn library that verifies passkey
answers) for every workflow would cost more than the gate itself.
"""

from __future__ import annotations

import importlib.util
import py_compile
import sys
from pathlib import Path

from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

PASSTHROUGH_MODULES = (
    "cbor2",
    "cedarpy",
    "cryptography",
    "opentelemetry",
    "structlog",
    "pydantic",
    "pydantic_core",
    "tiergate.core",
    "tiergate.errors",
    "tiergate.observe",
    "tiergate.sensitive",
    "tiergate.workflows._attributes",
    "tiergate.workflows._carry",
    "tiergate.workflows._spans",
    "tiergate.workflows._step_events",
    "tiergate.workflows._telemetry",
    # Passkey answers are verified in the workflow (WebAuthn and what it imports).
    "webauthn",
    # The detector's libraries (phone numbers, SSN and IBAN checks); phonenumbers loads a
    # region's metadata on first use, under a lock the sandbox would refuse to create.
    "phonenumbers",
    "stdnum",
    "OpenSSL",
    "pyasn1",
    "pyasn1_modules",
)


def ensure_bytecode() -> list[Path]:
    """Writes the bytecode of tiergate's sandboxed modules if it is missing or stale.

    The sandbox imports the run loop afresh for every workflow instance. Without a cached
    ``.pyc`` (``PYTHONDONTWRITEBYTECODE=1`` is common in containers and set on our CI),
    each import compiles ``_run.py`` from source: about a third of a 5-step run's extra
    worker CPU over bare Temporal (bench/overhead.py). Reading bytecode is allowed under
    that setting; only writing it is not, so we write it once, here, explicitly. Returns
    the files compiled; an unwritable install (a read-only image) is left as it is.
    """
    package = Path(__file__).parent
    passed = {name.rsplit(".", 1)[-1] for name in PASSTHROUGH_MODULES}
    compiled = []
    for source in sorted(package.glob("*.py")):
        if source.stem in passed:
            continue
        cached = Path(importlib.util.cache_from_source(str(source)))
        try:
            if cached.exists() and cached.stat().st_mtime >= source.stat().st_mtime:
                continue
            py_compile.compile(str(source), cfile=str(cached), doraise=True)
        except (OSError, py_compile.PyCompileError) as error:
            print(f"tiergate: cannot cache bytecode for {source}: {error}", file=sys.stderr)
            continue
        compiled.append(source)
    return compiled


def workflow_runner() -> SandboxedWorkflowRunner:
    """The sandbox for tiergate's workflows, its run loop's bytecode cached."""
    ensure_bytecode()
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH_MODULES)
    )
