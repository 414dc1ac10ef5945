"""One small family of errors; the shells turn them into messages that say what to do next.

Whatever went wrong, a reply to a person still carries `EMERGENCY_NOTE`: it lives in code,
not in the policy file, so it survives a policy that cannot be read.
"""

EMERGENCY_NOTE = (
    "If you have numbness in the groin, loss of bladder or bowel control, chest pain, fainting "
    "or new weakness in your legs, call your local emergency number now."
)


def with_emergency_note(text: str) -> str:
    """An error or refusal as shown to a person: what went wrong, then the emergency line."""
    return f"{text.rstrip()}\n\n{EMERGENCY_NOTE}"


class AssistantError(Exception):
    """Base class for every error the assistant raises on purpose."""


class ConfigError(AssistantError):
    """A setting is missing or invalid."""


class InputError(AssistantError):
    """The user's message cannot be answered as given (empty, too long, not text).

    `triage` is the triage of the conversation when it ran before the refusal (it always runs
    first), so a machine reading the error still learns the level; None when the input could
    not be read at all.
    """

    def __init__(self, message: str, *, triage: object | None = None) -> None:
        super().__init__(message)
        self.triage = triage


class KnowledgeError(AssistantError):
    """The knowledge documents are missing or cannot be read."""


class StoreError(AssistantError):
    """The vector index is missing, corrupt or cannot be written."""


class BackendError(AssistantError):
    """An optional language-model backend failed or is not installed."""
