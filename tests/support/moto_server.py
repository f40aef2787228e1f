"""The embedded moto server, as the tests reach it.

The demo's launcher (`seo_sync/demo/embedded.py`: moto's server on a loopback port, its writes made
atomic as DynamoDB's are, the fake credentials) and its relay (`seo_sync/demo/relay.py`: DynamoDB's
part of Kinesis Data Streams, played on moto) are the one place that starts and patches moto; the
tests use them, and import the demo package, only through here. Tests of the demo itself import it
directly.
"""

from __future__ import annotations

from seo_sync.demo.embedded import FAKE_CREDENTIALS, EmbeddedDynamo
from seo_sync.demo.relay import Relay

__all__ = ["FAKE_CREDENTIALS", "EmbeddedDynamo", "Relay"]
