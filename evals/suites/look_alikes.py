"""Look-alikes: ordinary back pain and ordinary effort in words that look like warning signs.

"My back hurts on the right side when I walk on incline" and "both my legs are heavy after the
climb" are among the commonest messages this assistant gets, and until waves 14 and 15 of the
triage corpus the model sent about one in five of them to urgent or emergency care: it had seen
"left side", "one side" and "both legs" almost only beside real warning signs (a face drooping on
one side, pain into the left arm, numbness in both legs).

`evals/data/look_alikes.jsonl` holds, from two writers who read only the article and the policy
and never saw the corpus (field `tags`: writer L1 and X1):

* L1: 149 harmless messages that say where ordinary back pain sits, and 66 with a sign in nearly
  the same words (pain into the left arm, a drooping face, a dragging foot, sciatica, fever,
  night pain);
* X1: 141 harmless messages of ordinary effort (heavy or burning legs, panting that settles, a
  pounding heart during the climb, a head rush stepping off, sore hands from the rails), and 66
  with a sign in similar words (both legs numb, breathless at rest, nearly fainting...).

Eight styles each, a few in the five other languages. L1 was written before wave 14 and X1
before wave 15. Two more writers were added in the eleventh session, each before the wave it
checked:

* B1 (kind `about_someone_else`): 150 harmless messages about a partner's, a parent's or a
  friend's ordinary back, posture or effort, and 70 with a sign in that person;
* M1 (kind `other_language`): Spanish, French, German, Portuguese and Italian, 121 harmless
  messages and 123 with a sign (first and third person, past and present tense, regional words).

A fifth writer was added in the twentieth session, beside wave 17 of the corpus and without
sight of it:

* N1 (kind `long_narrative`): 150 long, chatty messages (four to eight sentences of job, city,
  family, pets and weather before a question), 50 in English and 20 in each of the five other
  languages: 90 harmless and 60 with one sign stated in one clause in the middle, 15 of them in
  someone else. Tags `voice:...` say how each is written, `about:...` whose the sign is.

A sixth writer was added in the twenty-first session, beside wave 18 and without sight of it:

* N2 (kinds `clinical_words`, `other_language`, `euphemism`): 60 harmless messages in clinical or
  medically literate English (exertion that settles, a transient symptom with a benign cause,
  red flags denied in clinical terms, educational questions), 49 short everyday harmless
  messages in the five other languages, and 50 with a sign (clinical words, euphemisms, someone
  else, other languages). One more harmless line came too close to a corpus line and was left out.

A seventh writer was added in the twenty-second session, beside a wave of denials written for
the corpus (wave 19, tried and not kept; see the main README) and without sight of it:

* N3 (kinds `denial`, `other_language`): 120 harmless messages that mention a sign only to deny
  it, as a finished past event, as a hypothetical or educational question, or as a rule they read
  (80 in English, 8 in each of the five other languages), and 50 with a current sign said with
  negation words or among denials ("can't feel...", "no control..."; 35 English, 15 other).

None of them is ever trained or tuned on: a test keeps them, and near copies, out of the corpus
(six M1 lines that another writer had also written, nearly word for word, were left out).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from evals import DATA_DIR
from evals.results import SuiteResult
from evals.suites import triage
from evals.systems import Answerer

DATA = DATA_DIR / "look_alikes.jsonl"


def run(systems: Sequence[Answerer], data: Path = DATA) -> SuiteResult:
    return triage.run(
        systems,
        data,
        name="look_alikes",
        description=(
            "Ordinary pain and effort, someone else's and in five other languages, in words like a"
            " warning sign's: left alone; signs still caught."
        ),
    )
