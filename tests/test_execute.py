"""nbtoolkit.cli.execute: with a channel that misses its wake-up (jupyter/nbclient#312: the
poll sleeps its whole timeout although the message has arrived), a message is still read within
a slice of its arrival, and no message still raises Empty at the caller's timeout."""

import asyncio
import time
from queue import Empty

import pytest
from jupyter_client.channels import AsyncZMQSocketChannel

from nbtoolkit.cli import execute


def missing_the_wakeup(arrival: float):
    """A channel's get_msg that only looks for its message when its whole timeout is over."""
    async def get_msg(self, timeout=None):
        await asyncio.sleep(timeout)
        if time.monotonic() >= arrival:
            return {"msg_type": "execute_reply"}
        raise Empty
    return get_msg


@pytest.mark.parametrize("timeout", [30.0, None])
def test_an_arrived_message_is_read_within_a_slice(monkeypatch, timeout):
    monkeypatch.setattr(execute, "SLICE", 0.05)
    monkeypatch.setattr(execute, "_unsliced_get_msg", missing_the_wakeup(time.monotonic() + 0.2))
    start = time.monotonic()
    assert asyncio.run(execute._sliced_get_msg(None, timeout=timeout)) == {"msg_type": "execute_reply"}
    assert time.monotonic() - start < 1.0  # unsliced: the whole 30 s (None: never)


def test_without_a_message_empty_is_raised_at_the_timeout(monkeypatch):
    monkeypatch.setattr(execute, "SLICE", 0.05)
    monkeypatch.setattr(execute, "_unsliced_get_msg", missing_the_wakeup(float("inf")))
    start = time.monotonic()
    with pytest.raises(Empty):
        asyncio.run(execute._sliced_get_msg(None, timeout=0.3))
    assert 0.3 <= time.monotonic() - start < 1.0


def test_every_asyncio_channel_polls_in_slices(monkeypatch):
    monkeypatch.setattr(AsyncZMQSocketChannel, "get_msg", AsyncZMQSocketChannel.get_msg)  # restored after
    execute.read_messages_in_slices()
    execute.read_messages_in_slices()
    assert AsyncZMQSocketChannel.get_msg is execute._sliced_get_msg
