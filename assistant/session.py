"""The chat page's conversation as a signed token that the browser carries between requests.

No replica keeps a conversation in memory: each chat event sends the token back with the
message, so any app process behind a load balancer can answer the next message with the whole
conversation (its earlier red flags included), and a replica can restart or be replaced without
losing a conversation. The token is the `Transcript` as JSON (pydantic), zlib-compressed and
signed with `ASSISTANT_SESSION_SECRET` (itsdangerous): a client can read its own conversation
but cannot forge one, so it cannot change or withdraw another person's rating by naming its
row id, nor put words the assistant never said into a stored rating.
"""

from __future__ import annotations

import logging
import secrets

from itsdangerous import BadSignature, URLSafeSerializer
from pydantic import TypeAdapter, ValidationError

from assistant.config import Settings
from assistant.render import Transcript

log = logging.getLogger(__name__)
_TRANSCRIPT = TypeAdapter(Transcript)


class SessionCodec:
    """Turns a `Transcript` into a signed token and back (`dump` / `load`).

    Example:
        >>> codec = SessionCodec("a shared secret")
        >>> codec.load(codec.dump(Transcript())) == Transcript()
        True
    """

    SALT = "assistant.session.transcript.v1"  # a new version of the token's shape gets a new salt

    def __init__(self, secret: str) -> None:
        if not secret:
            raise ValueError("the session secret must not be empty")
        self._serializer = URLSafeSerializer(secret, salt=self.SALT)

    @classmethod
    def from_settings(cls, settings: Settings) -> SessionCodec:
        """The codec for `settings.session_secret`; unset, a random key for this process alone."""
        if settings.session_secret is not None:
            return cls(settings.session_secret.get_secret_value())
        if settings.chroma_url or settings.feedback_db_url:
            log.warning(
                "ASSISTANT_SESSION_SECRET is unset: only this process can continue its conversations; "
                "set the same secret on every replica behind a load balancer"
            )
        return cls(secrets.token_urlsafe(32))

    def dump(self, transcript: Transcript) -> str:
        """The signed token for `transcript` (compressed URL-safe text)."""
        return self._serializer.dumps(_TRANSCRIPT.dump_python(transcript, mode="json"))

    def load(self, token: str | None) -> Transcript | None:
        """The transcript in `token`; a fresh one for an empty token (a new conversation).

        Returns:
            None when the token was not signed with this secret or does not hold a transcript
            (tampered with, or signed by a replica with another secret): the caller starts afresh.
        """
        if not token:
            return Transcript()
        try:
            return _TRANSCRIPT.validate_python(self._serializer.loads(token))
        except (BadSignature, ValidationError) as exc:
            log.warning("a chat session token was refused (%s); starting afresh", type(exc).__name__)
            return None
