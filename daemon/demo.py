"""The embedded local DynamoDB (moto's HTTP server) and the demo: sample data and a simulated writer.

moto is a demo/test dependency (`pip install seo-sync[demo]`); it is imported only when used.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.request
from pathlib import Path
from typing import Any

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}
SAMPLE_DIR = Path(__file__).resolve().parent.parent / "data" / "sample"


class EmbeddedDynamo:
    """moto's DynamoDB + Streams HTTP server on a free loopback port, in a background thread."""

    def __init__(self, port: int = 0) -> None:
        from moto.server import ThreadedMotoServer  # demo/test dependency only

        for name in ("werkzeug", "moto"):
            logging.getLogger(name).setLevel(logging.ERROR)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self.endpoint = ""

    def start(self) -> EmbeddedDynamo:
        """Start serving; sets `endpoint`."""
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        return self

    def reset(self) -> None:
        """Forget every table (moto keeps state across stop/start in one process)."""
        req = urllib.request.Request(self.endpoint + "/moto-api/reset", method="POST", data=b"")  # noqa: S310
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback moto only (http)
            resp.read()

    def stop(self) -> None:
        """Stop serving."""
        self._server.stop()


def fake_credentials_env() -> dict[str, str]:
    """The environment a process needs to talk to the embedded DynamoDB (fake credentials)."""
    return dict(FAKE_CREDENTIALS)


def install_fake_credentials() -> None:
    """Put fake credentials into this process's environment unless real ones are already set."""
    for k, v in FAKE_CREDENTIALS.items():
        os.environ.setdefault(k, v)


def load_sample_items() -> dict[str, list[dict[str, Any]]]:
    """The sample data set: table name → items in DynamoDB JSON (see data/sample/)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(SAMPLE_DIR.glob("*.json")):
        out[path.stem] = json.loads(path.read_text(encoding="utf-8"))
    return out
