"""One small family of errors; the shells turn them into messages that say what to do next."""


class AssistantError(Exception):
    """Base class for every error the assistant raises on purpose."""


class ConfigError(AssistantError):
    """A setting is missing or invalid."""


class InputError(AssistantError):
    """The user's message cannot be answered as given (empty, too long, not text)."""


class KnowledgeError(AssistantError):
    """The knowledge documents are missing or cannot be read."""


class StoreError(AssistantError):
    """The vector index is missing, corrupt or cannot be written."""


class BackendError(AssistantError):
    """An optional language-model backend failed or is not installed."""
