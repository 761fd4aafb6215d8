"""Which addresses webhooks may connect to (``engine.notify.destinations``)."""

from __future__ import annotations

import pytest

from engine.notify.destinations import DEFAULT_NETWORKS, DestinationPolicy

DEFAULT = DestinationPolicy.of(DEFAULT_NETWORKS)


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped: judged as the IPv4 address
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("fe80::1%eth0", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "reserved"),
    ],
)
def test_the_platforms_own_host_and_special_addresses_are_refused(address: str, kind: str) -> None:
    assert (
        DEFAULT.refusal(address) == f"{address.split('%')[0].removeprefix('::ffff:')} is a {kind} address, "
        "which webhooks may not reach"
    )


@pytest.mark.parametrize("address", ["8.8.8.8", "2400:3200::1", "10.1.2.3", "172.20.0.5", "192.168.1.9", "fd00::7"])
def test_public_addresses_and_by_default_the_private_ranges_are_allowed(address: str) -> None:
    assert DEFAULT.refusal(address) is None


def test_the_operator_chooses_the_non_public_networks() -> None:
    public_only = DestinationPolicy.of([])
    assert public_only.refusal("10.1.2.3") == "10.1.2.3 is a private address, which webhooks may not reach"
    assert public_only.refusal("8.8.8.8") is None
    assert DestinationPolicy.of(["127.0.0.0/8"]).refusal("127.0.0.1") is None
    with pytest.raises(ValueError, match="'intranet' is not a network"):
        DestinationPolicy.of(["10.0.0.0/8", "intranet"])


def test_saved_urls_are_checked_only_where_they_name_an_address() -> None:
    assert (
        DEFAULT.url_host_refusal("LOCALHOST.") == "localhost is the platform's own host, which webhooks may not reach"
    )
    assert DEFAULT.url_host_refusal("127.0.0.1") is not None
    assert DEFAULT.url_host_refusal("hooks.bank-lingyuan.example") is None  # resolved when a delivery connects
