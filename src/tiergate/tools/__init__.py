"""Tool specifications (pure): names, risk tiers, kinds and argument schemas."""

from tiergate.tools._spec import ToolKind, ToolRegistry, ToolSpec
from tiergate.tools.support import SUPPORT_TOOLS

__all__ = ["SUPPORT_TOOLS", "ToolKind", "ToolRegistry", "ToolSpec"]
