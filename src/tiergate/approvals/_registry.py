"""The approver registry: who may answer approvals, with which roles, under which key.

Kept in the shared store (`tiergate.state`): every worker, page replica and administrator
of a fleet reads the same entries, and changes are transactions, so two administrators
adding people at once lose neither. The registry has an owner: every entry carries an
administrator's endorsement (an Ed25519 signature over the entry and which registry it is
in), made with the administrator key (``TIERGATE_ADMIN_KEY``, else
``<home>/admin/admin.pem``), and workers take only entries endorsed by a key they are
configured to trust (``TIERGATE_REGISTRY_ADMINS``): write access to the database alone adds
nobody. Every change is appended to the store's change log with who (the administrator key)
and when, in the same transaction. A run pins a snapshot of the registry when it starts
waiting, so its history alone can verify every approval later.
"""

from __future__ import annotations

import base64
import json
import os
import re
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from tiergate.approvals._signing import (
    generate_key,
    public_key_text,
    read_private_key,
    write_private_key,
)
from tiergate.core import Approver, Endorsement, Passkey, RegistrySnapshot, key_id, person
from tiergate.errors import ApproverError
from tiergate.settings import Settings
from tiergate.state import Database, Tx

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$")

Kind = Literal["approvers", "operators"]


class ApproverRegistry:
    """Read and change one registry in the shared store; every change is one transaction.

    ``kind`` picks the registry: ``approvers`` (who answers approvals) or ``operators`` (who
    signs kill-switch commands to running runs); both hold the same kind of entry. ``home``
    is this host's: demo keys made by `add` are kept under it, and the administrator key is
    looked for there when ``TIERGATE_ADMIN_KEY`` is unset.
    """

    def __init__(
        self,
        database: Database,
        kind: Kind = "approvers",
        *,
        home: Path,
        admin_key: Path | None = None,
        seen: Path | None = None,
    ) -> None:
        """``seen``: where this host remembers the newest endorsed entries it has taken
        (`RegistryMemory`); workers and the page pass a folder in their own home."""
        self.database = database
        self.kind = kind
        self.memory = RegistryMemory(seen / f"{kind}.json", kind) if seen else None
        self.keys = home / "keys" if kind == "approvers" else home / "keys" / kind
        self.admin_key = admin_key or admin_key_path(home)

    @classmethod
    def of(
        cls, settings: Settings, kind: Kind = "approvers", *, seen: Path | None = None
    ) -> ApproverRegistry:
        """The registry in ``settings``' shared store, as seen from their home."""
        return cls(settings.database(), kind, home=settings.home, seen=seen)

    def _entries(self, tx: Tx) -> dict[str, Approver]:
        rows = tx.all(
            "SELECT name, body FROM registry_entries WHERE registry = ? ORDER BY name",
            (self.kind,),
        )
        return {str(name): Approver.model_validate_json(body) for name, body in rows}

    def snapshot(self) -> RegistrySnapshot:
        """Every entry in the store, endorsed or not (what the CLI lists)."""
        return RegistrySnapshot.of(self.database.transaction(self._entries))

    def trusted(self, admins: list[str]) -> RegistrySnapshot:
        """Only the entries one of ``admins`` endorsed, none older than this host has seen:
        what workers and the page use."""
        endorsed = self.snapshot().endorsed(admins, self.kind)
        return self.memory.newest(endorsed, admins) if self.memory else endorsed

    def changes(self) -> list[dict[str, Any]]:
        """The change log, oldest first: registry, op, name, by (administrator key id), at,
        and the entry as endorsed."""
        rows = self.database.transaction(
            lambda tx: tx.all(
                "SELECT op, name, by_whom, at, entry FROM registry_changes "
                "WHERE registry = ? ORDER BY id",
                (self.kind,),
            )
        )
        return [
            {
                "registry": self.kind,
                "op": op,
                "name": name,
                "by": by,
                "at": at,
                "entry": json.loads(entry),
            }
            for op, name, by, at, entry in rows
        ]

    def _admin(self) -> Ed25519PrivateKey:
        if not self.admin_key.exists():
            raise ApproverError(
                f"changing the {self.kind} registry takes the administrator key; none at "
                f"{self.admin_key}",
                fix="run `tiergate admin keygen` on the administrator's machine and point "
                "TIERGATE_ADMIN_KEY at the key file",
            )
        return read_private_key(self.admin_key)

    def _change(self, op: str, edit: Callable[[dict[str, Approver]], Approver]) -> Approver:
        """``edit`` of the current entries (raising ApproverError to refuse), endorsed by
        the administrator key, written with its change-log line in one transaction (run
        again from a fresh read when a concurrent change wins)."""
        admin = self._admin()

        def work(tx: Tx) -> Approver:
            entry = _endorsed(edit(self._entries(tx)), admin, self.kind)
            assert entry.endorsement is not None
            tx.execute(
                "INSERT INTO registry_entries VALUES (?, ?, ?) ON CONFLICT (registry, name) "
                "DO UPDATE SET body = excluded.body",
                (self.kind, entry.name, entry.model_dump_json()),
            )
            tx.execute(
                "INSERT INTO registry_changes (registry, op, name, by_whom, at, entry) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    self.kind,
                    op,
                    entry.name,
                    entry.endorsement.by,
                    entry.endorsement.at,
                    entry.model_dump_json(),
                ),
            )
            return entry

        return self.database.transaction(work)

    def add(
        self,
        name: str,
        roles: list[str],
        public_key: str | None = None,
        *,
        demo_key: bool = False,
    ) -> tuple[Approver, Path | None]:
        """Register ``name`` with roles, endorsed by the administrator key.

        - With ``public_key`` (what `tiergate approvers keygen` printed on the approver's own
          machine) only that public half is kept: they answer from the CLI with their key.
        - With ``demo_key`` a key pair is made here, its private key written under ``keys/``
          and the entry labeled ``demo_key`` (the demo's and dev's approvers; the path is
          returned). Never for a real person: whoever reads this host could sign as them.
        - With neither, the approver holds no key yet: they sign in to the web page and enroll
          a passkey there, which an administrator endorses (`add_passkey`).
        """
        if not _NAME.match(name):
            raise ApproverError(
                f"approver name {name!r} is not valid", fix="use letters, digits, _.@-"
            )
        if not roles:
            raise ApproverError("an approver needs at least one role", fix="pass --role ROLE")
        if demo_key and public_key is not None:
            raise ApproverError("pass a public key or ask for a demo key, not both")
        key = generate_key() if demo_key else None
        public = public_key_text(key) if key is not None else public_key or ""
        if public:
            _check_public_key(public)

        def new(approvers: dict[str, Approver]) -> Approver:
            if any(person(other) == person(name) for other in approvers):
                raise ApproverError(
                    f"{name!r} is already registered (names are compared case-folded)",
                    fix="pick another name, or revoke it first",
                )
            if public and any(a.public_key == public for a in approvers.values()):
                raise ApproverError(
                    "that public key is registered already",
                    fix="each person needs their own key",
                )
            return Approver(
                name=name,
                roles=sorted(set(roles)),
                public_key=public,
                key_id=key_id(public) if public else "",
                demo_key=demo_key,
                created_at=datetime.now(UTC).isoformat(),
            )

        entry = self._change("add", new)
        return entry, self._write_key(name, key) if key else None

    def add_passkey(self, name: str, passkey: Passkey) -> Approver:
        """Endorse ``passkey`` (enrolled by ``name`` on the web page) into their entry. The
        administrator should first compare its `Passkey.key_id` with the one the approver's
        page showed: the page's host could have enrolled a passkey of its own."""

        def added(approvers: dict[str, Approver]) -> Approver:
            entry = self._entry(approvers, name)
            taken = {p.credential_id for a in approvers.values() for p in a.passkeys}
            taken |= {p.public_key for a in approvers.values() for p in a.passkeys}
            if passkey.credential_id in taken or passkey.public_key in taken:
                raise ApproverError(
                    f"passkey {passkey.key_id} is registered already",
                    fix="each person enrolls their own passkey",
                )
            return entry.model_copy(update={"passkeys": [*entry.passkeys, passkey]})

        return self._change("add_passkey", added)

    def revoke_passkey(self, name: str, passkey_id: str) -> Approver:
        """Remove the passkey whose key id (or credential id) is ``passkey_id``: answers it
        proves are refused from now on, even mid-wait."""

        def removed(approvers: dict[str, Approver]) -> Approver:
            entry = self._entry(approvers, name)
            kept = [p for p in entry.passkeys if passkey_id not in (p.key_id, p.credential_id)]
            if len(kept) == len(entry.passkeys):
                raise ApproverError(
                    f"{name} has no passkey {passkey_id!r}", fix="see `tiergate approvers list`"
                )
            return entry.model_copy(update={"passkeys": kept})

        return self._change("revoke_passkey", removed)

    def revoke(self, name: str) -> Approver:
        return self._change(
            "revoke",
            lambda approvers: self._entry(approvers, name).model_copy(
                update={"active": False, "revoked_at": datetime.now(UTC).isoformat()}
            ),
        )

    def clear(self) -> None:
        """Remove every entry (the demo starts from an empty registry). Needs no
        endorsement: removing an entry denies approvals, it grants none. Logged."""
        at = datetime.now(UTC).isoformat()

        def work(tx: Tx) -> None:
            tx.execute("DELETE FROM registry_entries WHERE registry = ?", (self.kind,))
            tx.execute(
                "INSERT INTO registry_changes (registry, op, name, by_whom, at, entry) "
                "VALUES (?, 'clear', '', '', ?, '{}')",
                (self.kind, at),
            )

        self.database.transaction(work)

    @staticmethod
    def _entry(approvers: dict[str, Approver], name: str) -> Approver:
        if name not in approvers:
            raise ApproverError(f"no approver named {name!r}", fix="see `tiergate approvers list`")
        return approvers[name]

    def _write_key(self, name: str, key: Ed25519PrivateKey) -> Path:
        # The name is new to the registry, so a file left under it belongs to no entry.
        return write_private_key(self.keys / f"{name}.pem", key, replace=True)

    def private_key(self, name: str) -> Ed25519PrivateKey:
        """The key of a demo or dev approver, made on this host by `add` (``demo_key``); any
        other approver's private key is on their own machine, never here."""
        entry = self.snapshot().approvers.get(name)
        if entry is None or not entry.demo_key:
            raise ApproverError(
                f"{name!r} has no demo key on this host",
                fix="sign with the approver's own key file (--key PATH), on their machine",
            )
        path = self.keys / f"{name}.pem"
        try:
            return read_private_key(path)
        except ApproverError as error:
            raise ApproverError(
                f"cannot read the private key of {name!r}: {error.message}",
                fix="sign with the approver's own key file (--key PATH), on their machine",
            ) from None


def _endorsed(entry: Approver, admin: Ed25519PrivateKey, registry: str) -> Approver:
    """``entry`` as ``admin`` endorses it into ``registry`` now."""
    at = datetime.now(UTC).isoformat()
    unsigned = entry.model_copy(update={"endorsement": None, "changed_at": at})
    signature = base64.b64encode(admin.sign(unsigned.endorsement_message(registry)))
    endorsement = Endorsement(
        by=key_id(public_key_text(admin)), at=at, signature=signature.decode()
    )
    return unsigned.model_copy(update={"endorsement": endorsement})


class RegistryMemory:
    """The newest endorsed state of each entry this host has taken, kept in its own home.

    Whoever can write the registry's rows cannot forge an endorsement, but could put back
    an older endorsed state (a revoked approver active again, a revoked passkey restored).
    Endorsed states are ordered by their signed ``changed_at``: an entry older than the one
    remembered is replaced by the remembered one, which is what the administrator said last.
    Deleting an entry still removes it (that denies approvals, it grants none). The memory
    lasts as long as the host's home: a container whose home is not kept across restarts
    relearns from the store, which is why the store's registry tables should be writable
    by the administrator's database role only (README, "Shared state").
    """

    def __init__(self, path: Path, registry: str) -> None:
        self.path, self.registry = path, registry

    def _read(self, admins: list[str]) -> dict[str, Approver]:
        if not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            entries = {name: Approver.model_validate(v) for name, v in data.items()}
        except (OSError, ValueError):
            return {}  # unreadable memory is rebuilt from what is read next
        # Re-checked: only what a trusted administrator endorsed is remembered.
        return {n: a for n, a in entries.items() if a.endorsed_by(admins, self.registry)}

    def newest(self, endorsed: RegistrySnapshot, admins: list[str]) -> RegistrySnapshot:
        remembered = self._read(admins)
        taken, learned = dict(endorsed.approvers), False
        for name, entry in endorsed.approvers.items():
            seen = remembered.get(name)
            if seen is not None and _order(entry) < _order(seen):
                taken[name] = seen  # a rolled-back file: the newer endorsed state stands
            elif seen is None or _order(seen) < _order(entry):
                remembered[name], learned = entry, True
        if learned:
            self._write(remembered)
        try:
            return RegistrySnapshot.of(taken)
        except ValueError:
            # The remembered state clashes with another entry (a key moved since): take
            # neither version of the rolled-back entries.
            kept = {n: a for n, a in endorsed.approvers.items() if taken[n] is a}
            return RegistrySnapshot.of(kept)

    def _write(self, entries: dict[str, Approver]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump({k: v.model_dump() for k, v in entries.items()}, out, indent=2)
        os.replace(tmp, self.path)


def _order(entry: Approver) -> datetime:
    """When ``entry``'s state was endorsed; entries endorsed before ``changed_at`` existed
    come first."""
    if not entry.changed_at:
        return datetime.min.replace(tzinfo=UTC)
    return datetime.fromisoformat(entry.changed_at)


def _check_public_key(public: str) -> None:
    try:
        Ed25519PublicKey.from_public_bytes(base64.b64decode(public, validate=True))
    except ValueError:
        raise ApproverError(
            f"{public[:60]!r} is not a base64 Ed25519 public key",
            fix="pass what `tiergate approvers keygen` printed",
        ) from None


def admin_key_path(home: Path) -> Path:
    """Where registry changes take the administrator key from: ``TIERGATE_ADMIN_KEY``, else
    ``<home>/admin/admin.pem`` (dev and the demo make one there)."""
    configured = os.environ.get("TIERGATE_ADMIN_KEY")
    return Path(configured) if configured else home / "admin" / "admin.pem"


def dev_admin(home: Path) -> str:
    """The dev stack's own administrator: a key under ``home`` (made if missing), for
    `tiergate dev`, the demo and tests. Its public key, to trust. Production workers trust
    only keys they are configured with, never one they find in their home."""
    path = home / "admin" / "admin.pem"
    if not path.exists():
        write_private_key(path, generate_key())
    return public_key_text(read_private_key(path))


def trusting_dev_admin(settings: Settings) -> Settings:
    """``settings`` that also trust the dev administrator under their home (`dev_admin`):
    for `tiergate dev`, the demo and tests only."""
    public = dev_admin(settings.home)
    if public in settings.registry_admins:
        return settings
    return settings.model_copy(update={"registry_admins": [*settings.registry_admins, public]})
