"""The shared store: one database (SQLite on one machine, PostgreSQL for a fleet) holding
the state tiergate keeps beside Temporal, with a versioned schema."""

from tiergate.state._database import (
    Database,
    Tx,
    close_all,
    close_database,
    masked,
    open_database,
)
from tiergate.state._legacy import import_home
from tiergate.state._migrations import MIGRATIONS, Migration, migrate

__all__ = [
    "MIGRATIONS",
    "Database",
    "Migration",
    "Tx",
    "close_all",
    "close_database",
    "import_home",
    "masked",
    "migrate",
    "open_database",
]
