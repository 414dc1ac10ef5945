"""Red-flag triage: which level of care a conversation calls for, decided before any answer.

One module, one job:

* `policy.py`   the policy (signs, levels, wording, costs) read from `rules/red_flags.yaml`;
* `patterns.py` the reviewed pattern backstop, with NegEx-style negation scoping;
* `segment.py`  messages cut into sentences and clauses, so a buried sign counts;
* `corpus.py`   the labelled training corpus (`rules/triage_corpus/`) and its splits;
* `model.py`    the learned sign classifier (embeddings + character and word n-grams);
* `language.py` which language a message is in;
* `decide.py`   the one decision function, shared by the runtime and the tuning;
* `triager.py`  `Triager`, which runs them in order;
* `train.py`    training, threshold tuning on dev, and honest reports.
"""

from assistant.triage.policy import ESCALATING, TriagePolicy
from assistant.triage.triager import Triager

__all__ = ["ESCALATING", "TriagePolicy", "Triager"]
