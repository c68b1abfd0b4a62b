"""Services entry point: Finger, SYSTAT (Active Users), MSP, NNTP/NNTPS and Gopher."""
from __future__ import annotations

from bbs.app import App
from bbs.listeners import ServiceHandler
from bbs.runner import ServerParts
from services import finger, gopher, msp, nntp, systat


def create(app: App) -> ServerParts:
    """Called by the composition root; returns a handler per service."""
    return ServerParts(handlers={
        "finger": ServiceHandler(stream=finger.handler(app)),
        "systat": ServiceHandler(stream=systat.tcp(app), datagram=systat.udp(app)),
        "msp": ServiceHandler(stream=msp.tcp(app), datagram=msp.udp(app)),
        "nntp": ServiceHandler(stream=nntp.handler(app)),
        "nntps": ServiceHandler(stream=nntp.handler(app)),
        "gopher": ServiceHandler(stream=gopher.handler(app)),
    })
