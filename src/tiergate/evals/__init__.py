"""Evals as the deployment gate: suites of versioned cases run as real governed runs."""

from tiergate.errors import EvalError
from tiergate.evals._checks import Observed, judge
from tiergate.evals._results import CaseChange, ResultStore, compare, load_result
from tiergate.evals._runner import CaseResult, SuiteResult, run_suite, summarise
from tiergate.evals._suite import Case, Suite, load_suite

__all__ = [
    "Case",
    "CaseChange",
    "CaseResult",
    "EvalError",
    "Observed",
    "ResultStore",
    "Suite",
    "SuiteResult",
    "compare",
    "judge",
    "load_result",
    "load_suite",
    "run_suite",
    "summarise",
]
