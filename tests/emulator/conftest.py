"""Fixtures shared by the emulator's tests (helpers live in ``ntropy_provider.emulator.testing``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ntropy_provider.emulator.testing import WebhookReceiver


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """A running :class:`WebhookReceiver` that answers 200; stopped after the test."""
    with WebhookReceiver() as receiver:
        yield receiver
