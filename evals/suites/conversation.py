"""Conversation: follow-ups resolve against earlier turns, and red flags persist.

Each case is played turn by turn; the history fed to a turn is the earlier user
messages with the assistant's actual replies, as the chat page would send it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from evals import DATA_DIR
from evals.metrics import contains, mean
from evals.results import MetricResult, SuiteResult
from evals.schema import SEVERITY, ConversationCase, TurnExpectation, load_cases
from evals.systems import Answerer, SystemAnswer

DATA = DATA_DIR / "conversation.yaml"


def check_turn(expect: TurnExpectation, ans: SystemAnswer) -> list[str]:
    """What the reply got wrong for this turn's expectations ([] when it met them all)."""
    problems = []
    level = ans.level or "self_care"
    if expect.level and level != expect.level:
        problems.append(f"level {level}, expected {expect.level}")
    if expect.level_at_least and SEVERITY.get(level, 0) < SEVERITY[expect.level_at_least]:
        problems.append(f"level {level}, expected at least {expect.level_at_least}")
    if expect.contains_any and not any(contains(ans.response, p) for p in expect.contains_any):
        problems.append(f"answer lacks any of {expect.contains_any}")
    if expect.cites_any and not any(
        contains(c, p) for c in ans.citations for p in expect.cites_any
    ):
        problems.append(f"no citation contains any of {expect.cites_any}")
    if expect.covered is not None and ans.covered != expect.covered:
        problems.append(f"covered={ans.covered}, expected {expect.covered}")
    return problems


def run(systems: Sequence[Answerer], data: Path = DATA) -> SuiteResult:
    cases = load_cases(data, ConversationCase)
    system = next(s for s in systems if s.has_triage)
    follow_ups, persistence, turns_ok, cases_ok, rows, failures = [], [], [], [], [], []
    for case in cases:
        history: list[dict[str, str]] = []
        case_ok = True
        for i, turn in enumerate(case.turns):
            ans = system.answer(turn.user_input, list(history))
            problems = check_turn(turn.expect, ans)
            ok = not problems
            turns_ok.append(float(ok))
            case_ok &= ok
            if i > 0 and (turn.expect.contains_any or turn.expect.cites_any):
                follow_ups.append(float(ok))
            if turn.expect.level_at_least:
                persistence.append(float(ok))
            row = {
                "id": f"{case.id}#{i + 1}",
                "user_input": turn.user_input,
                "response": ans.response,
                "level": ans.level,
                "problems": problems,
            }
            rows.append(row)
            if problems:
                failures.append({k: v for k, v in row.items() if k != "response"})
            history += [
                {"role": "user", "content": turn.user_input},
                {"role": "assistant", "content": ans.response},
            ]
        cases_ok.append(float(case_ok))
    name = system.name
    metrics = [
        MetricResult(
            name="follow_up_resolution",
            description="share of follow-up turns whose answer has the expected content",
            values={name: mean(follow_ups)},
        ),
        MetricResult(
            name="red_flag_persistence",
            description="share of turns after a red flag that keep at least its level",
            values={name: mean(persistence)},
        ),
        MetricResult(
            name="turn_pass_rate",
            description="share of turns meeting all their expectations",
            values={name: mean(turns_ok)},
        ),
        MetricResult(
            name="case_pass_rate",
            description="share of conversations with every turn passing",
            values={name: mean(cases_ok)},
        ),
    ]
    return SuiteResult(
        name="conversation",
        description="Multi-turn: follow-ups resolve, red flags from earlier turns still stand.",
        systems=[name],
        cases=len(cases),
        metrics=metrics,
        records={name: rows},
        failures=failures,
    )
