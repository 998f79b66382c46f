"""Who the client is and whether it reached us over https, behind proxies Kaspero trusts.

`X-Forwarded-Proto` and `X-Forwarded-For` are anyone's to send: they count only when the peer
that sent the request is one of `TRUSTED_PROXIES` (addresses or networks, e.g. the load
balancer's). Behind such a proxy a TLS-terminated request is https to the client, so the
dashboard's cookie is `Secure`, and login attempts are counted per real client, not per proxy.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # settings parse TRUSTED_PROXIES here without loading the web framework
    import falcon

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(text: str) -> tuple[Network, ...]:
    """`10.0.0.0/8, 192.168.1.5` → networks; raises ValueError naming a bad entry."""
    networks = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError as ex:
            raise ValueError(f"{item!r} is not an IP address or network") from ex
    return tuple(networks)


class ClientSide:
    def __init__(self, trusted: Sequence[Network] = ()) -> None:
        self._trusted = tuple(trusted)

    def _via_trusted_proxy(self, req: falcon.Request) -> bool:
        try:
            peer = ipaddress.ip_address(req.remote_addr or "")
        except ValueError:
            return False
        return any(peer in network for network in self._trusted)

    def https(self, req: falcon.Request) -> bool:
        if req.scheme == "https":
            return True
        if not self._via_trusted_proxy(req):
            return False
        forwarded = (req.get_header("X-Forwarded-Proto") or "").split(",")[0].strip().lower()
        return forwarded == "https"

    def address(self, req: falcon.Request) -> str:
        """The client's address: the nearest untrusted hop of `X-Forwarded-For` behind trusted
        proxies, else the peer."""
        peer = req.remote_addr or ""
        if not self._via_trusted_proxy(req):
            return peer
        hops = [hop.strip() for hop in (req.get_header("X-Forwarded-For") or "").split(",") if hop.strip()]
        for hop in reversed(hops):
            try:
                address = ipaddress.ip_address(hop)
            except ValueError:
                return hop[:64]
            if not any(address in network for network in self._trusted):
                return hop
        return hops[0] if hops else peer
