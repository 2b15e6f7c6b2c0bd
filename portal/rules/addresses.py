"""IP addresses and CIDR ranges as sortable text: what an IP trunk's range is stored as."""

import ipaddress

# IPv4 addresses are kept as IPv4-mapped IPv6 (::ffff:a.b.c.d): one ordering for both families.
_MAPPED = 0xFFFF << 32


def address_key(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """An address as 32 hex digits of its IPv6 (IPv4-mapped) value: text sorts as addresses do."""
    value = int(address)
    if address.version == 4:
        value |= _MAPPED
    return format(value, "032x")


def parse_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An IPv4 or IPv6 address, or None; an IPv4-mapped IPv6 address is its IPv4 address."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def source_key(text: str) -> str | None:
    """address_key() of an address as a softswitch sends it, or None if it is not one."""
    if not isinstance(text, str) or not 2 <= len(text) <= 45 or "/" in text or "%" in text:
        return None  # no range, no IPv6 zone: a call comes from one address
    address = parse_address(text)
    return address_key(address) if address is not None else None


def parse_network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """An address (a /32 or /128) or CIDR range, host bits cleared; None if it is neither."""
    text = text.strip()
    if not text or len(text) > 49 or "%" in text:
        return None
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None
    if network.version == 6 and network.network_address.ipv4_mapped is not None:
        mapped = network.prefixlen - 96
        if mapped >= 0:  # ::ffff:203.0.113.0/120 is 203.0.113.0/24
            return ipaddress.ip_network(f"{network.network_address.ipv4_mapped}/{mapped}")
    return network


def network_range(network) -> tuple[str, str]:
    """(first, last) address_key() of a network."""
    return address_key(network.network_address), address_key(network.broadcast_address)
