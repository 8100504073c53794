"""Network facts the provider needs in several places: whether a host name is this machine."""

from __future__ import annotations

import ipaddress


def is_loopback_host(host: str | None) -> bool:
    """Whether ``host`` names this machine (``localhost``, ``127.0.0.0/8``, ``::1``; IPv6 brackets allowed).

    Plain HTTP is accepted only towards such a host (the local emulator, a webhook receiver under test).

    :param host: a host name or IP literal, without port.
    """
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
