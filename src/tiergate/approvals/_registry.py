"""The approver registry: who may answer approvals, with which roles, under which key.

Kept in one JSON file (`<home>/approvers.json`); private keys are written beside it in
`<home>/keys/NAME.pem` with mode 0600 and never enter the registry. A run pins a snapshot of
the registry when it starts waiting, so its history alone can verify every approval later.
"""

from __future__ import annotations

import base64
import json
import os
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from tiergate.approvals._signing import generate_key, public_key_text
from tiergate.core import Approver, RegistrySnapshot, key_id, person
from tiergate.errors import ApproverError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$")


class ApproverRegistry:
    """Read and change the registry file; every change is an atomic rename.

    ``kind`` picks the registry: ``approvers`` (who answers approvals) or ``operators`` (who
    signs kill-switch commands to running runs); both hold the same kind of entry.
    """

    def __init__(self, home: Path, kind: Literal["approvers", "operators"] = "approvers") -> None:
        self.kind = kind
        self.path = home / f"{kind}.json"
        self.keys = home / "keys" if kind == "approvers" else home / "keys" / kind

    def snapshot(self) -> RegistrySnapshot:
        if not self.path.exists():
            return RegistrySnapshot.of({})
        data = json.loads(self.path.read_text(encoding="utf-8"))
        return RegistrySnapshot.of({k: Approver.model_validate(v) for k, v in data.items()})

    def _write(self, approvers: dict[str, Approver]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent)
        with os.fdopen(fd, "w") as handle:
            json.dump({k: v.model_dump() for k, v in approvers.items()}, handle, indent=2)
        os.replace(tmp, self.path)

    def add(
        self, name: str, roles: list[str], public_key: str | None = None
    ) -> tuple[Approver, Path | None]:
        """Register ``name`` with roles. With ``public_key`` (what `tiergate approvers keygen`
        printed on the approver's own machine) only that public half is kept: the private
        key never reaches this host. Without it a key pair is made here and its private key
        written under ``keys/`` (the demo's and dev's way; its path is returned)."""
        if not _NAME.match(name):
            raise ApproverError(
                f"approver name {name!r} is not valid", fix="use letters, digits, _.@-"
            )
        if not roles:
            raise ApproverError("an approver needs at least one role", fix="pass --role ROLE")
        approvers = self.snapshot().approvers
        if any(person(other) == person(name) for other in approvers):
            raise ApproverError(
                f"{name!r} is already registered (names are compared case-folded)",
                fix="pick another name, or revoke it first",
            )
        key = generate_key() if public_key is None else None
        public = public_key_text(key) if key is not None else public_key or ""
        _check_public_key(public)
        if any(a.public_key == public for a in approvers.values()):
            raise ApproverError(
                "that public key is registered already", fix="each person needs their own key"
            )
        entry = Approver(
            name=name,
            roles=sorted(set(roles)),
            public_key=public,
            key_id=key_id(public),
            created_at=datetime.now(UTC).isoformat(),
        )
        key_path = self._write_key(name, key) if key else None
        approvers[name] = entry
        self._write(approvers)
        return entry, key_path

    def _write_key(self, name: str, key: Ed25519PrivateKey) -> Path:
        self.keys.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.keys / f"{name}.pem"
        pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        os.chmod(path, 0o600)
        return path

    def revoke(self, name: str) -> Approver:
        approvers = self.snapshot().approvers
        if name not in approvers:
            raise ApproverError(f"no approver named {name!r}", fix="see `tiergate approvers list`")
        entry = approvers[name].model_copy(
            update={"active": False, "revoked_at": datetime.now(UTC).isoformat()}
        )
        approvers[name] = entry
        self._write(approvers)
        return entry

    def private_key(self, name: str) -> Ed25519PrivateKey:
        path = self.keys / f"{name}.pem"
        try:
            key = load_pem_private_key(path.read_bytes(), password=None)
        except (OSError, ValueError) as error:
            raise ApproverError(
                f"cannot read the private key of {name!r} at {path}: {error}",
                fix=f"run as the approver who holds it, or `tiergate approvers add {name}`",
            ) from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ApproverError(f"{path} is not an Ed25519 key")
        return key


def _check_public_key(public: str) -> None:
    try:
        Ed25519PublicKey.from_public_bytes(base64.b64decode(public, validate=True))
    except ValueError:
        raise ApproverError(
            f"{public[:60]!r} is not a base64 Ed25519 public key",
            fix="pass what `tiergate approvers keygen` printed",
        ) from None
