"""``[core] hostname_callable`` of the distributed stack: each process reports the name the harness gave it.

All the stack's processes run on one machine, so the real host name cannot tell two Celery workers (or two
triggerers) apart. The harness sets ``NTROPY_STACK_HOSTNAME`` per component (``worker-1``, ``triggerer-2``):
the task instances' ``hostname`` then names the worker that ran them and the triggerer jobs' ``hostname``
names the triggerer holding a trigger.
"""

from __future__ import annotations

import os
import socket


def hostname() -> str:
    """The component's name from ``NTROPY_STACK_HOSTNAME``, else the machine's fully qualified name."""
    return os.environ.get("NTROPY_STACK_HOSTNAME") or socket.getfqdn()
