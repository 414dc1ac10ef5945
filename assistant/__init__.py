"""Back-pain guidance chat assistant: cited advice from a knowledge base, with red-flag triage.

Importing the package forces offline mode before any ML library loads; the heavy
parts (sentence-transformers, Chroma, Gradio) are imported lazily, where used.
"""

from assistant import _offline  # noqa: F401  (must run before any ML import)
from assistant.config import Settings
from assistant.errors import (
    AssistantError,
    ConfigError,
    InputError,
    KnowledgeError,
    StoreError,
)
from assistant.types import Answer, Chunk, Citation, Triage, TriageLevel, Turn

__all__ = [
    "Answer",
    "Assistant",
    "AssistantError",
    "Chunk",
    "Citation",
    "ConfigError",
    "InputError",
    "KnowledgeError",
    "Settings",
    "StoreError",
    "Triage",
    "TriageLevel",
    "Turn",
]


def __getattr__(name: str):  # lazy: importing Assistant pulls in the models
    if name == "Assistant":
        from assistant.assistant import Assistant

        return Assistant
    raise AttributeError(name)
