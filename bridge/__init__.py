"""The puppet-service bridge: a runtime that serves our instance protocol (HTTP, to the platform)
in front of Wechaty puppet-service providers (gRPC, one token per WeCom account). It imports no
platform app, only ``instances.protocol``; run it with ``python -m bridge`` (docs/bridge.md)."""
