"""Activities: everything that touches the outside world (models, tools, agent loading, files)."""

from tiergate.activities._agents import (
    AgentActivities,
)
from tiergate.activities._approvals import (
    ApprovalActivities,
)
from tiergate.activities._content import (
    ContentStore,
    DatabaseContentStore,
    FileContentStore,
    Transcript,
)
from tiergate.activities._content_s3 import S3ContentStore
from tiergate.activities._content_url import content_store
from tiergate.activities._identity import (
    DEFAULT_TTL_SECONDS,
    ISSUER,
    BackendGuard,
    Claims,
    CredentialBroker,
    CredentialVerifier,
    principal,
)
from tiergate.activities._model import (
    ModelActivities,
    ModelVet,
    declared_models,
    read_exchanges,
)
from tiergate.activities._openai import (
    OpenAICompatibleProvider,
    function_name,
    parse_completion,
    to_messages,
)
from tiergate.activities._providers import (
    Provider,
    ProviderOutput,
    ScriptedProvider,
    count_tokens,
    prompt_tokens,
    raw_tokens,
)
from tiergate.activities._reruns import (
    Answer,
    ReRunActivities,
)
from tiergate.activities._reviews import (
    ReviewStore,
)
from tiergate.activities._tools import (
    ToolBackend,
    ToolRunner,
)
from tiergate.activities._verifier import (
    BundleSource,
    ToolCallVerifier,
)

__all__ = [
    "DEFAULT_TTL_SECONDS",
    "ISSUER",
    "AgentActivities",
    "Answer",
    "ApprovalActivities",
    "BackendGuard",
    "BundleSource",
    "Claims",
    "ContentStore",
    "CredentialBroker",
    "CredentialVerifier",
    "DatabaseContentStore",
    "FileContentStore",
    "ModelActivities",
    "ModelVet",
    "OpenAICompatibleProvider",
    "Provider",
    "ProviderOutput",
    "ReRunActivities",
    "ReviewStore",
    "S3ContentStore",
    "ScriptedProvider",
    "ToolBackend",
    "ToolCallVerifier",
    "ToolRunner",
    "Transcript",
    "content_store",
    "count_tokens",
    "declared_models",
    "function_name",
    "parse_completion",
    "principal",
    "prompt_tokens",
    "raw_tokens",
    "read_exchanges",
    "to_messages",
]
