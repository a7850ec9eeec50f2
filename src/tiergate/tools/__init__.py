"""The tools a worker runs: specs with their argument models, what a call tells them, and
toolsets (a team's own functions as tools)."""

from tiergate.tools._ambiguous import Ambiguous
from tiergate.tools._call import Replayed, ToolCall
from tiergate.tools._fixture import CaseFixture
from tiergate.tools._loading import ENTRY_POINT_GROUP, load_toolsets, offered_toolsets
from tiergate.tools._registry import Tool, ToolRegistry
from tiergate.tools._toolset import Toolset, ToolsetBackend, charged

__all__ = [
    "ENTRY_POINT_GROUP",
    "Ambiguous",
    "CaseFixture",
    "Replayed",
    "Tool",
    "ToolCall",
    "ToolRegistry",
    "Toolset",
    "ToolsetBackend",
    "charged",
    "load_toolsets",
    "offered_toolsets",
]
