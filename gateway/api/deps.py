"""Dependencies: the objects the lifespan built, taken from the request's lifespan state.

They are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in its thread pool,
which costs a thread hand-off per dependency per request for what is an attribute read.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from gateway.broker.base import Broker
from gateway.channels import ChannelInfo
from gateway.hub import Hub
from gateway.revocation import Revocation
from gateway.settings import Settings


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.state.settings
    return settings


async def get_hub(request: Request) -> Hub:
    hub: Hub = request.state.hub
    return hub


async def get_broker(request: Request) -> Broker:
    broker: Broker = request.state.broker
    return broker


async def get_channel_info(request: Request) -> ChannelInfo:
    info: ChannelInfo = request.state.channel_info
    return info


async def get_revocation(request: Request) -> Revocation:
    revocation: Revocation = request.state.revocation
    return revocation


SettingsDep = Annotated[Settings, Depends(get_settings)]
HubDep = Annotated[Hub, Depends(get_hub)]
BrokerDep = Annotated[Broker, Depends(get_broker)]
InfoDep = Annotated[ChannelInfo, Depends(get_channel_info)]
RevocationDep = Annotated[Revocation, Depends(get_revocation)]
