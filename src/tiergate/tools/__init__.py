"""The tools a worker runs: specs with their argument models, and what a call tells them."""

from tiergate.tools._call import ToolCall
from tiergate.tools._registry import Tool, ToolRegistry

__all__ = ["Tool", "ToolCall", "ToolRegistry"]
