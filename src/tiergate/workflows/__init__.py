"""Workflows and the deterministic core they use: records, proposals, gate and budgets."""

from tiergate.workflows._budget import BudgetLedger, model_cost
from tiergate.workflows._gate import Gate
from tiergate.workflows._proposal import parse_proposal
from tiergate.workflows._records import (
    ApprovalReceipt,
    ApprovalRecord,
    ApprovalWait,
    BudgetStop,
    Decision,
    EscalateProposal,
    FinalAnswerProposal,
    InvalidProposal,
    Outcome,
    OutputCheck,
    PendingAction,
    Proposal,
    Refusal,
    RunStatus,
    RunSummary,
    StepMark,
    StepRecord,
    ToolCallProposal,
    Usage,
    Verdict,
    Versions,
)
from tiergate.workflows._run import RUN_MEMO, STEP_MEMO, AgentRunWorkflow, parse_run_input
from tiergate.workflows._sandbox import PASSTHROUGH_MODULES, workflow_runner

__all__ = [
    "PASSTHROUGH_MODULES",
    "RUN_MEMO",
    "STEP_MEMO",
    "AgentRunWorkflow",
    "ApprovalReceipt",
    "ApprovalRecord",
    "ApprovalWait",
    "BudgetLedger",
    "BudgetStop",
    "Decision",
    "EscalateProposal",
    "FinalAnswerProposal",
    "Gate",
    "InvalidProposal",
    "Outcome",
    "OutputCheck",
    "PendingAction",
    "Proposal",
    "Refusal",
    "RunStatus",
    "RunSummary",
    "StepMark",
    "StepRecord",
    "ToolCallProposal",
    "Usage",
    "Verdict",
    "Versions",
    "model_cost",
    "parse_proposal",
    "parse_run_input",
    "workflow_runner",
]
