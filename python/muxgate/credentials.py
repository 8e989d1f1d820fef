"""Provider credentials at rest: Fernet-encrypted with a key from `MUXGATE_SECRET_KEY`.

The control plane stores and publishes the encrypted token; only a worker holding the same key
can read it, so the secret never crosses Redis or an API response in clear. Shared by both
planes, so it depends on neither."""

from __future__ import annotations

import os

from cryptography.fernet import Fernet, InvalidToken

SECRET_KEY_ENV = "MUXGATE_SECRET_KEY"


class SecretKeyMissing(ValueError):
    """A credential must be encrypted or decrypted but no key is configured."""


class CredentialCipher:
    """Encrypts and decrypts provider credentials; without a key it refuses loudly."""

    def __init__(self, key: str | None) -> None:
        self._fernet: Fernet | None = None
        if key:
            try:
                self._fernet = Fernet(key.encode())
            except ValueError as exc:
                raise ValueError(
                    f"{SECRET_KEY_ENV} must be a urlsafe base64-encoded 32-byte key "
                    "(generate one with `Fernet.generate_key()`)"
                ) from exc

    @classmethod
    def from_env(cls) -> CredentialCipher:
        return cls(os.environ.get(SECRET_KEY_ENV) or None)

    @property
    def available(self) -> bool:
        return self._fernet is not None

    def encrypt(self, secret: str) -> str:
        if self._fernet is None:
            raise SecretKeyMissing(
                f"{SECRET_KEY_ENV} is not set, so an encrypted credential cannot be stored; "
                "set it or use credential_env"
            )
        return self._fernet.encrypt(secret.encode()).decode()

    def decrypt(self, token: str) -> str:
        if self._fernet is None:
            raise SecretKeyMissing(f"{SECRET_KEY_ENV} is not set; cannot decrypt a credential")
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise ValueError(f"credential was not encrypted with this {SECRET_KEY_ENV}") from exc
