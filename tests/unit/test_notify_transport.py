"""Apprise delivery through the provider's hook, to a real webhook receiver on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from gonogo.core.messages.notify import Message
from gonogo.dag.notify import _send_apprise
from gonogo.dev.receivers import WebhookReceiver


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(failing={"/broken"})
    receiver.start()
    yield receiver
    receiver.stop()


def connection(url: str) -> SimpleNamespace:
    return SimpleNamespace(extra_dejson={"config": {"path": url}})


MESSAGE = Message("run_started", "Started: EHR", "EHR 4.2 (change CHG1)\n\nThe run: http://x")


def test_a_message_arrives_with_its_title_and_text(hook: WebhookReceiver) -> None:
    _send_apprise("it", MESSAGE, connection(hook.apprise_url("desk")))
    (arrival,) = hook.at("desk")
    assert (arrival.title, arrival.body) == (MESSAGE.title, MESSAGE.body)


def test_a_refused_message_is_an_error_that_keeps_the_url_secret(hook: WebhookReceiver) -> None:
    secret = hook.apprise_url("broken") + "?token=s3cr3t-t0ken"
    with pytest.raises(RuntimeError) as caught:
        _send_apprise("it", MESSAGE, connection(secret))
    assert "s3cr3t-t0ken" not in str(caught.value)
    assert hook.at("broken") == []
