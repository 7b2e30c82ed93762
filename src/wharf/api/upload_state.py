"""The signed state carried in an upload's Location, so any worker can check a session URL.

The state names the repository and the session; it is HMAC-signed with ``http.secret``, so a
session URL cannot be bent to another repository or session. The offset is not carried: the
size of the stored data is the truth.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

__all__ = ["UploadStateSigner"]


class UploadStateSigner:
    def __init__(self, secret: str) -> None:
        self._key = secret.encode()

    def _mac(self, name: str, upload_id: str) -> str:
        mac = hmac.new(self._key, f"{name}\n{upload_id}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac[:24]).decode().rstrip("=")

    def sign(self, name: str, upload_id: str) -> str:
        return self._mac(name, upload_id)

    def verify(self, state: str, name: str, upload_id: str) -> bool:
        return hmac.compare_digest(state.encode(), self._mac(name, upload_id).encode())
