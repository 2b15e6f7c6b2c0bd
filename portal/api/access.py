"""The REST API of blocked prefixes (of accounts and rate groups) and IP trunks."""

from datetime import datetime
from typing import Annotated

from flask import Response, jsonify
from pydantic import BaseModel, ConfigDict, Field

from portal.access.service import (
    account_blocked_prefixes,
    account_trunks,
    add_trunk,
    block_account_prefix,
    block_group_prefix,
    group_blocked_prefixes,
    remove_trunk,
    unblock_account_prefix,
    unblock_group_prefix,
)
from portal.api.accounts import account_or_404
from portal.api.caller import key_account as _actor
from portal.api.caller import utc as _utc
from portal.api.errors import ApiError
from portal.api.openapi import operation, parse_body
from portal.extensions import db
from portal.models import AccountBlockedPrefix, IpTrunk, RateGroup, RateGroupBlockedPrefix, Status
from portal.security import visible_rate_groups


class BlockedPrefixIn(BaseModel):
    """A prefix to block: every number starting with it is refused (DESTINATION_BLOCKED)."""

    model_config = ConfigDict(extra="forbid")

    prefix: Annotated[str, Field(pattern=r"^[0-9]{1,32}$", examples=["4490"])]


class BlockedPrefixOut(BaseModel):
    """A blocked prefix."""

    id: int
    prefix: str
    created_at: datetime


class BlockedPrefixList(BaseModel):
    """Blocked prefixes, in prefix order."""

    items: list[BlockedPrefixOut]


class IpTrunkIn(BaseModel):
    """An address or CIDR range whose calls (source_ip) are the account's."""

    model_config = ConfigDict(extra="forbid")

    network: Annotated[
        str,
        Field(
            min_length=1,
            max_length=49,
            pattern=r"^[0-9A-Fa-f:./]+$",
            examples=["203.0.113.0/24"],
            description="An IPv4 or IPv6 address (a /32 or /128) or CIDR range; it may not "
            "overlap any other trunk's.",
        ),
    ]
    tech_prefix: Annotated[
        str,
        Field(
            pattern=r"^[0-9]{0,16}$",
            description="Digits the trunk's calls dial first, stripped before rating.",
        ),
    ] = ""


class IpTrunkOut(BaseModel):
    """An IP trunk of an account."""

    id: int
    network: str
    tech_prefix: str
    status: Status
    created_at: datetime


class IpTrunkList(BaseModel):
    """IP trunks, in address order."""

    items: list[IpTrunkOut]


def _blocked_json(blocked) -> dict:
    """A blocked prefix as BlockedPrefixOut."""
    return BlockedPrefixOut(
        id=blocked.id, prefix=blocked.prefix, created_at=_utc(blocked.created_at)
    ).model_dump(mode="json")


def _trunk_json(trunk: IpTrunk) -> dict:
    """An IP trunk as IpTrunkOut."""
    return IpTrunkOut(
        id=trunk.id,
        network=trunk.network,
        tech_prefix=trunk.tech_prefix,
        status=trunk.status,
        created_at=_utc(trunk.created_at),
    ).model_dump(mode="json")


def _managed_account(account_id: int):
    """A customer or reseller the key's owner manages; its own rules are its parent's."""
    account = account_or_404(account_id)
    if account.id == _actor().id:
        raise ApiError(403, "An account's calling rules are set by its owner.")
    return account


def _group_or_404(group_id: int) -> RateGroup:
    """A rate group the key's owner manages, or a JSON 404."""
    group = db.session.scalar(visible_rate_groups(_actor()).where(RateGroup.id == group_id))
    if group is None:
        raise ApiError(404, "No such rate group.")
    return group


@operation(
    "/accounts/<int:account_id>/blocked-prefixes",
    "GET",
    summary="The account's blocked prefixes.",
    tag="Calling rules",
    responses={200: BlockedPrefixList},
    errors=(404,),
)
def list_account_blocked_prefixes(account_id: int):
    """Every blocked prefix of the account."""
    account = account_or_404(account_id)
    return jsonify(items=[_blocked_json(item) for item in account_blocked_prefixes(account)])


@operation(
    "/accounts/<int:account_id>/blocked-prefixes",
    "POST",
    summary="Block a prefix for the account (a duplicate is a 422 on `prefix`).",
    tag="Calling rules",
    body=BlockedPrefixIn,
    responses={201: BlockedPrefixOut},
    errors=(403, 404),
)
def add_account_blocked_prefix(account_id: int):
    """Refuse the account's calls to numbers starting with the prefix."""
    account = _managed_account(account_id)
    body = parse_body(BlockedPrefixIn)
    return jsonify(_blocked_json(block_account_prefix(_actor(), account, body.prefix))), 201


@operation(
    "/accounts/<int:account_id>/blocked-prefixes/<int:blocked_id>",
    "DELETE",
    summary="Allow the account's calls to a blocked prefix again.",
    tag="Calling rules",
    responses={204: None},
    errors=(403, 404),
)
def delete_account_blocked_prefix(account_id: int, blocked_id: int):
    """Remove one blocked prefix of the account."""
    account = _managed_account(account_id)
    blocked = db.session.get(AccountBlockedPrefix, blocked_id)
    if blocked is None or blocked.account_id != account.id:
        raise ApiError(404, "No such blocked prefix.")
    unblock_account_prefix(_actor(), blocked)
    return Response(status=204)


@operation(
    "/rate-groups/<int:group_id>/blocked-prefixes",
    "GET",
    summary="The rate group's blocked prefixes (no account of the group may call them).",
    tag="Calling rules",
    responses={200: BlockedPrefixList},
    errors=(404,),
)
def list_group_blocked_prefixes(group_id: int):
    """Every blocked prefix of the rate group."""
    group = _group_or_404(group_id)
    return jsonify(items=[_blocked_json(item) for item in group_blocked_prefixes(group)])


@operation(
    "/rate-groups/<int:group_id>/blocked-prefixes",
    "POST",
    summary="Block a prefix for every account of the rate group.",
    tag="Calling rules",
    body=BlockedPrefixIn,
    responses={201: BlockedPrefixOut},
    errors=(404,),
)
def add_group_blocked_prefix(group_id: int):
    """Refuse the group's calls to numbers starting with the prefix."""
    group = _group_or_404(group_id)
    body = parse_body(BlockedPrefixIn)
    return jsonify(_blocked_json(block_group_prefix(_actor(), group, body.prefix))), 201


@operation(
    "/rate-groups/<int:group_id>/blocked-prefixes/<int:blocked_id>",
    "DELETE",
    summary="Allow the rate group's calls to a blocked prefix again.",
    tag="Calling rules",
    responses={204: None},
    errors=(404,),
)
def delete_group_blocked_prefix(group_id: int, blocked_id: int):
    """Remove one blocked prefix of the rate group."""
    group = _group_or_404(group_id)
    blocked = db.session.get(RateGroupBlockedPrefix, blocked_id)
    if blocked is None or blocked.rate_group_id != group.id:
        raise ApiError(404, "No such blocked prefix.")
    unblock_group_prefix(_actor(), blocked)
    return Response(status=204)


@operation(
    "/accounts/<int:account_id>/ip-trunks",
    "GET",
    summary="The account's IP trunks: addresses and ranges its calls may come from.",
    tag="Calling rules",
    responses={200: IpTrunkList},
    errors=(404,),
)
def list_ip_trunks(account_id: int):
    """Every IP trunk of the account."""
    account = account_or_404(account_id)
    return jsonify(items=[_trunk_json(trunk) for trunk in account_trunks(account)])


@operation(
    "/accounts/<int:account_id>/ip-trunks",
    "POST",
    summary="Add an address or CIDR range to the account (an overlap is a 422 on `network`).",
    tag="Calling rules",
    body=IpTrunkIn,
    responses={201: IpTrunkOut},
    errors=(403, 404),
)
def add_ip_trunk(account_id: int):
    """Let calls from the address or range be the account's."""
    account = _managed_account(account_id)
    body = parse_body(IpTrunkIn)
    return jsonify(_trunk_json(add_trunk(_actor(), account, body.model_dump()))), 201


@operation(
    "/accounts/<int:account_id>/ip-trunks/<int:trunk_id>",
    "DELETE",
    summary="Remove one of the account's IP trunks.",
    tag="Calling rules",
    responses={204: None},
    errors=(403, 404),
)
def delete_ip_trunk(account_id: int, trunk_id: int):
    """Stop taking the trunk's calls as the account's."""
    account = _managed_account(account_id)
    trunk = db.session.get(IpTrunk, trunk_id)
    if trunk is None or trunk.account_id != account.id:
        raise ApiError(404, "No such IP trunk.")
    remove_trunk(_actor(), trunk)
    return Response(status=204)
