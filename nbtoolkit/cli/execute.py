"""papermill's command line, with kernel messages read in slices of at most a second:
``python -m nbtoolkit.cli.execute`` takes papermill's arguments (the runner calls it).

Why: jupyter_client's asyncio channels can miss the wake-up for a message that has already
arrived (jupyter/nbclient#312, open): a cell whose widgets send comm messages (our explorers)
then sits idle until its whole execution timeout, 15 minutes in ``make test``, before nbclient
reads the reply and the cell "completes". Polling in slices reads it within a quarter of a second.
"""

from __future__ import annotations

import sys
from queue import Empty
from time import monotonic

from jupyter_client.channels import AsyncZMQSocketChannel

SLICE = 0.25  # seconds: the longest a message that has arrived waits to be read
_unsliced_get_msg = AsyncZMQSocketChannel.get_msg


async def _sliced_get_msg(self, timeout: float | None = None) -> dict:
    """``get_msg``, polling at most :data:`SLICE` seconds at a time until ``timeout`` (None:
    forever); raises ``Empty`` at the timeout, as the original does."""
    deadline = None if timeout is None else monotonic() + timeout
    while True:
        left = SLICE if deadline is None else max(0.0, deadline - monotonic())
        try:
            return await _unsliced_get_msg(self, timeout=min(SLICE, left))
        except Empty:
            if deadline is not None and monotonic() >= deadline:
                raise


def read_messages_in_slices() -> None:
    """Make every asyncio kernel channel of this process poll in slices (idempotent)."""
    AsyncZMQSocketChannel.get_msg = _sliced_get_msg


if __name__ == "__main__":
    from papermill.cli import papermill

    read_messages_in_slices()
    sys.exit(papermill())
