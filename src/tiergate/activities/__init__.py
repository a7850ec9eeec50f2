"""Activities: everything that touches the outside world (models, tools, files)."""

from tiergate.activities._agents import AgentActivities
from tiergate.activities._approvals import ApprovalActivities
from tiergate.activities._content import ContentStore, Transcript
from tiergate.activities._model import ModelActivities, read_exchanges
from tiergate.activities._reviews import ReviewError, ReviewStore
from tiergate.activities._support_store import SupportStore
from tiergate.activities._tools import ToolActivities

__all__ = [
    "AgentActivities",
    "ApprovalActivities",
    "ContentStore",
    "ModelActivities",
    "ReviewError",
    "ReviewStore",
    "SupportStore",
    "ToolActivities",
    "Transcript",
    "read_exchanges",
]
