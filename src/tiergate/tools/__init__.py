"""The tools a worker runs: specs with their argument models, what a call tells them, and
toolsets (a team's own functions as tools)."""

from tiergate.tools._call import ToolCall
from tiergate.tools._registry import Tool, ToolRegistry
from tiergate.tools._toolset import Toolset, ToolsetBackend

__all__ = ["Tool", "ToolCall", "ToolRegistry", "Toolset", "ToolsetBackend"]
