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
        ("100.100.100.200", "cloud-metadata"),  # Alibaba Cloud's, inside the default carrier-grade NAT range
        ("fd00:ec2::254", "cloud-metadata"),  # AWS's IPv6 one, inside the default unique local range
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
    assert DEFAULT.refusal("100.100.100.201") is None  # the rest of the range is a bank's
    assert DestinationPolicy.of(["100.100.100.200/32"]).refusal("100.100.100.200") is None  # listed as itself
    with pytest.raises(ValueError, match="'intranet' is not a network"):
        DestinationPolicy.of(["10.0.0.0/8", "intranet"])


def test_saved_urls_are_checked_only_where_they_name_an_address() -> None:
    assert (
        DEFAULT.url_host_refusal("LOCALHOST.") == "localhost is the platform's own host, which webhooks may not reach"
    )
    assert DEFAULT.url_host_refusal("127.0.0.1") is not None
    assert DEFAULT.url_host_refusal("hooks.bank-lingyuan.example") is None  # resolved when a delivery connects


@pytest.mark.parametrize(
    ("host", "address", "kind"),
    [
        ("127.1", "127.0.0.1", "loopback"),  # a.b: the last part fills the lower 24 bits
        ("127.0.1", "127.0.0.1", "loopback"),  # a.b.c: the last part fills the lower 16 bits
        ("2130706433", "127.0.0.1", "loopback"),  # one decimal number
        ("0x7f000001", "127.0.0.1", "loopback"),  # one hexadecimal number
        ("0x7f.1", "127.0.0.1", "loopback"),
        ("0x7f.0.0.1", "127.0.0.1", "loopback"),
        ("017700000001", "127.0.0.1", "loopback"),  # a leading 0: octal
        ("0177.0.0.1", "127.0.0.1", "loopback"),
        ("127.1.", "127.0.0.1", "loopback"),  # a trailing dot
        ("0", "0.0.0.0", "unspecified"),  # connecting to it reaches the own host
        ("0xa9fea9fe", "169.254.169.254", "link-local"),  # cloud metadata
        ("１２７.０.０.１", "127.0.0.1", "loopback"),  # full-width digits: IDNA-encoded to ASCII as sockets do
        ("127。0。0。1", "127.0.0.1", "loopback"),  # ideographic full stops likewise
    ],
)
def test_saved_urls_naming_an_address_in_a_legacy_spelling_are_read_as_the_resolver_reads_them(
    host: str, address: str, kind: str
) -> None:
    assert DEFAULT.url_host_refusal(host) == f"{host} is {address}, a {kind} address, which webhooks may not reach"


def test_saved_legacy_spellings_follow_the_same_policy_as_the_addresses_they_name() -> None:
    assert DEFAULT.url_host_refusal("10.1") is None  # 10.0.0.1: a bank's own network by default
    assert DEFAULT.url_host_refusal("0xc0a80109") is None  # 192.168.1.9
    assert DEFAULT.url_host_refusal("134744072") is None  # 8.8.8.8: public
    assert DestinationPolicy.of(["127.0.0.0/8"]).url_host_refusal("127.1") is None  # the operator allows it
    public_only = DestinationPolicy.of([])
    assert public_only.url_host_refusal("10.1") == "10.1 is 10.0.0.1, a private address, which webhooks may not reach"


@pytest.mark.parametrize(
    ("host", "refusal"),
    [
        ("::ffff:127.0.0.1", "127.0.0.1 is a loopback address"),  # IPv4-mapped: judged as the IPv4 address
        ("::ffff:7f00:1", "127.0.0.1 is a loopback address"),  # the same, in hexadecimal
        ("::1", "::1 is a loopback address"),
        ("fe80::1%25eth0", "fe80::1 is a link-local address"),  # a zone, as a URL spells it
    ],
)
def test_saved_ipv6_literals_are_judged_by_the_address_they_carry(host: str, refusal: str) -> None:
    assert DEFAULT.url_host_refusal(host) == f"{refusal}, which webhooks may not reach"


@pytest.mark.parametrize("host", ["localhost", "LocalHost.", "api.localhost", "ｌｏｃａｌｈｏｓｔ"])
def test_saved_urls_naming_localhost_are_refused(host: str) -> None:
    assert DEFAULT.url_host_refusal(host) == "localhost is the platform's own host, which webhooks may not reach"


@pytest.mark.parametrize(
    "host", ["hooks.bank-lingyuan.example", "0x7f.example", "1e100.net", "127.0.0.1.nip.example", "bücher.example"]
)
def test_names_that_merely_look_numeric_are_left_to_the_delivery(host: str) -> None:
    assert DEFAULT.url_host_refusal(host) is None
