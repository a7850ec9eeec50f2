"""The shared store: one database (SQLite on one machine, PostgreSQL for a fleet) holding
the state tiergate keeps beside Temporal, with a versioned schema."""

from tiergate.state._database import Database, Tx, connect, masked
from tiergate.state._legacy import import_home
from tiergate.state._migrations import MIGRATIONS, Migration, migrate
from tiergate.state._open import close_all, close_database, open_database
from tiergate.state._roles import ACCESS, RoleKind, grant

__all__ = [
    "ACCESS",
    "MIGRATIONS",
    "Database",
    "Migration",
    "RoleKind",
    "Tx",
    "close_all",
    "close_database",
    "connect",
    "grant",
    "import_home",
    "masked",
    "migrate",
    "open_database",
]
