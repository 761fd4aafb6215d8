"""Where webhooks may send: public addresses and the configured networks, never the platform's own host.

A bank administrator chooses a webhook's URL, and the platform makes the request from inside the
province's network. Unchecked, that URL could name the platform's own host (``127.0.0.1:5432``), a
cloud metadata service (``169.254.169.254``) or anything else the server reaches, and a refusing
receiver's answer is shown back in the delivery list. So every address a webhook connects to is
checked when the connection is made (after DNS resolution, so a name that later resolves elsewhere
gains nothing): public addresses, and the networks in ``CREDITFLOW_WEBHOOK_NETWORKS`` (by default
the private ranges where banks' own systems live), are allowed; loopback, link-local, unspecified,
multicast and reserved addresses never are unless a network listed there contains them, and the cloud
metadata services inside the default networks (``100.100.100.200``) only if listed as that very address. A URL
whose host names an address directly, or ``localhost``, is refused when the webhook is saved; the
host is read as the resolver would read it (without a DNS lookup), so the legacy IPv4 spellings
``inet_aton`` accepts (``127.1``, ``2130706433``, ``0x7f.1``, octal ``0177.0.0.1``, ``0``) and
non-ASCII digits and dots (IDNA-encoded by Python's sockets) are judged as the addresses they name.

Through an HTTP proxy from the environment, the check applies to the proxy's address; the proxy
then decides where requests may go.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# RFC 1918, carrier-grade NAT and IPv6 unique local addresses: where a bank's own systems live
DEFAULT_NETWORKS = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
_SPECIAL = ("loopback", "link_local", "unspecified", "multicast", "reserved")  # refused even where "global"
# Cloud metadata services inside the default networks (Alibaba Cloud in carrier-grade NAT, AWS's IPv6
# one in fc00::/7): refused unless CREDITFLOW_WEBHOOK_NETWORKS lists the very address.
METADATA = tuple(ipaddress.ip_address(a) for a in ("100.100.100.200", "fd00:ec2::254"))


class DestinationRefused(OSError):
    """Every address the webhook's host resolves to is one webhooks may not reach."""


@dataclass(frozen=True)
class DestinationPolicy:
    networks: tuple[IpNetwork, ...]

    @classmethod
    def of(cls, cidrs: Iterable[str]) -> DestinationPolicy:
        """From CIDR texts; ValueError naming the first one that is not a network."""
        networks = []
        for cidr in cidrs:
            try:
                networks.append(ipaddress.ip_network(cidr.strip(), strict=False))
            except ValueError:
                raise ValueError(f"CREDITFLOW_WEBHOOK_NETWORKS: {cidr!r} is not a network (e.g. 10.0.0.0/8)") from None
        return cls(tuple(networks))

    def refusal(self, ip: str) -> str | None:
        """Why a webhook may not connect to ``ip``; None when it may."""
        address = _judged(ipaddress.ip_address(ip.split("%", 1)[0]))  # an IPv6 zone (fe80::1%eth0) is not part of it
        kind = self._refused_kind(address)
        return None if kind is None else f"{address} is a {kind} address, which webhooks may not reach"

    def url_host_refusal(self, host: str) -> str | None:
        """At save time: a host that names an address directly (or ``localhost``) and is refused.

        No DNS lookup: a name is checked when a delivery connects. What counts as an address is
        what the resolver reads as one, so ``http://0x7f.1/`` cannot slip past as a "name".
        """
        name = _as_resolved(host).rstrip(".").lower()
        if name == "localhost" or name.endswith(".localhost"):  # RFC 6761: always the own host
            return "localhost is the platform's own host, which webhooks may not reach"
        if ":" in name:  # an IPv6 literal (the URL's brackets are gone)
            try:
                return self.refusal(name)
            except ValueError:
                return None
        try:  # a dotted quad, or 127.1, 2130706433, 0x7f.1, 0177.0.0.1, 0 …
            address = ipaddress.IPv4Address(socket.inet_aton(name))
        except (OSError, ValueError):
            return None  # a name: checked when a delivery connects
        kind = self._refused_kind(address)
        if kind is None:
            return None
        refused = f"a {kind} address, which webhooks may not reach"
        return f"{address} is {refused}" if str(address) == host else f"{host} is {address}, {refused}"

    def _refused_kind(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
        """What kind of address refused ``address`` is ("loopback", "private", …); None when allowed."""
        if address in METADATA:
            listed = any(network.num_addresses == 1 and address in network for network in self.networks)
            return None if listed else "cloud-metadata"
        if any(address in network for network in self.networks):
            return None
        kind = next((name for name in _SPECIAL if getattr(address, f"is_{name}")), None)
        if kind is None and address.is_global:
            return None
        return (kind or ("private" if address.is_private else "non-public")).replace("_", "-")

    def connect(
        self, address: tuple[str, int], timeout: Any = socket._GLOBAL_DEFAULT_TIMEOUT, source_address: Any = None
    ) -> socket.socket:
        """``socket.create_connection`` to the first allowed address the host resolves to."""
        host, port = address
        refused: list[str] = []
        failure: OSError | None = None
        for *_, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
            why = self.refusal(str(sockaddr[0]))
            if why is not None:
                refused.append(why)
                continue
            try:
                return socket.create_connection((str(sockaddr[0]), port), timeout, source_address)
            except OSError as exc:
                failure = exc
        if failure is not None:
            raise failure
        raise DestinationRefused(f"refused {host}: " + "; ".join(dict.fromkeys(refused)))


def _judged(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An IPv4-mapped IPv6 address (``::ffff:127.0.0.1``) reaches the IPv4 address: judge that."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _as_resolved(host: str) -> str:
    """The host as Python's sockets hand it to the resolver: a non-ASCII one IDNA-encoded, which maps
    full-width digits and ideographic full stops to ASCII (``１２７。０。０。１`` is 127.0.0.1)."""
    if host.isascii():
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host  # the resolver is never asked: the delivery fails on its own
