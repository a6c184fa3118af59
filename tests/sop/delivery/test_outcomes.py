"""The delivery policy: what each answer turns a row into."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from sop.delivery import OutboxMessage, Outcome, RetryPolicy, SendResult
from sop.delivery.outcomes import Decision, decide
from store.models import OutboxState

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
POLICY = RetryPolicy(max_attempts=3, base=timedelta(seconds=2), cap=timedelta(seconds=60))


def _message(attempts: int = 1, expires_at: datetime | None = None) -> OutboxMessage:
    return OutboxMessage(
        id=1,
        key="k",
        channel="c",
        recipient="r",
        payload={},
        attempts=attempts,
        due_at=NOW,
        expires_at=expires_at,
    )


def _decide(
    result: SendResult,
    customer: bool = False,
    attempts: int = 1,
    expires_at: datetime | None = None,
) -> Decision:
    return decide(
        _message(attempts, expires_at),
        result,
        customer_facing=customer,
        policy=POLICY,
        now=NOW,
        rng=random.Random(1),
    )


@pytest.mark.parametrize(
    ("outcome", "state"),
    [
        (Outcome.SENT, OutboxState.SENT),
        (Outcome.PERMANENT, OutboxState.FAILED),
        (Outcome.EXPIRED, OutboxState.EXPIRED),
        (Outcome.UNCERTAIN, OutboxState.UNCERTAIN),
    ],
)
def test_final_outcomes_map_to_final_states(outcome: Outcome, state: OutboxState) -> None:
    decision = _decide(SendResult(outcome, 40058, "bad"))
    assert decision.state is state


def test_transient_errors_back_off_exponentially_with_jitter() -> None:
    delays = []
    for attempts in (1, 2):
        decision = decide(
            _message(attempts),
            SendResult(Outcome.TRANSIENT, -1, "busy"),
            customer_facing=False,
            policy=POLICY,
            now=NOW,
            rng=random.Random(attempts),
        )
        assert decision.state is OutboxState.PENDING
        assert decision.retry_at is not None
        delays.append(decision.retry_at - NOW)
    assert timedelta(seconds=1) <= delays[0] < timedelta(seconds=2)
    assert timedelta(seconds=2) <= delays[1] < timedelta(seconds=4)


def test_the_last_attempt_fails_with_the_platform_errcode() -> None:
    decision = _decide(SendResult(Outcome.TRANSIENT, 45009, "freq"), attempts=3)
    assert decision.state is OutboxState.FAILED
    assert decision.errcode == 45009
    assert "gave up after 3 attempt(s)" in (decision.error or "")


def test_a_customer_message_that_may_have_gone_out_is_never_retried() -> None:
    result = SendResult(Outcome.TRANSIENT, None, "no answer within 10 s", maybe_applied=True)
    assert _decide(result, customer=True).state is OutboxState.UNCERTAIN
    assert _decide(result, customer=False).state is OutboxState.PENDING


def test_a_retry_that_would_come_after_the_window_expires_the_row() -> None:
    decision = _decide(
        SendResult(Outcome.TRANSIENT, -1, "busy"), expires_at=NOW + timedelta(seconds=1)
    )
    assert decision.state is OutboxState.EXPIRED
