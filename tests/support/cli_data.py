"""Data and a fake status socket shared by the command-line tests."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

N38 = "12345678901234567890123456789012345678"
N38_FRACTION = "-0.00000000000000000000000000000000000000000012345678901234567890123456789012345678"
HOSTILE_NAMES = ['pk" = "pk" OR "pk', "n" * 65536, "nul\x00byte", "\u202eevil\u202c", "__proto__"]


def business_items() -> dict[str, list[dict]]:
    """Two businesses in raw AttributeValues, with every type, 38-digit numbers and hostile attribute names."""
    acme_extra = {name: {"S": f"value of {name[:10]}"} for name in HOSTILE_NAMES}
    return {
        "businesses": [
            {"business_id": {"S": "acme"}, "name": {"S": "Acme Plumbing"}, "industry": {"S": "plumbing"},
             "updated_at": {"S": "2026-01-02T00:00:00Z"}, "_version": {"N": "3"}, "_deleted": {"BOOL": False},
             "revenue": {"N": N38}, "tiny": {"N": N38_FRACTION}, "tags": {"SS": ["zeta", "alpha", "mu"]},
             "ratios": {"NS": ["10", "-1.5", N38, "0.25"]}, "logo": {"B": b"\x89PNG\x00\xff"},
             "thumbs": {"BS": [b"\x02", b"\x01\x00", b"\xff"]}, "nothing": {"NULL": True},
             "empty_map": {"M": {}}, "empty_list": {"L": []},
             "meta": {"M": {"nested": {"M": {"deep": {"L": [{"N": N38}, {"BOOL": True}, {"NULL": True}]}}},
                            "bin": {"B": b"\x00"}}}, **acme_extra},
            {"business_id": {"S": "zeta"}, "name": {"S": "Zeta Roofing"}, "industry": {"S": "roofing"},
             "updated_at": {"S": "2026-01-03T00:00:00Z"}, "_version": {"N": "1"}},
        ],
        "questionnaires": [
            {"business_id": {"S": "acme"}, "_version": {"N": "2"}, "completeness_score": {"N": "87.5"},
             "data": {"M": {"services": {"L": [{"S": "drains"}, {"S": "desatascos"}]},
                            "big": {"N": N38}, "hours": {"M": {"sat": {"NULL": True}}},
                            "tags": {"SS": ["emergency", "24h"]},
                            "docs": {"L": [{"B": b"\x00\x01"}, {"NS": ["1.5", "2", N38]}, {"BS": [b"\xff"]}]}}}},
        ],
        "keywords": [
            {"business_id": {"S": "acme"}, "keyword_id": {"S": "drain-cleaning#en"}, "slug": {"S": "drain-cleaning"},
             "keyword": {"S": "drain cleaning"}, "language": {"S": "en"}},
            {"business_id": {"S": "acme"}, "keyword_id": {"S": "limpieza-de-drenajes#es"},
             "slug": {"S": "limpieza-de-drenajes"}, "keyword": {"S": "limpieza de drenajes"}, "language": {"S": "es"}},
            {"business_id": {"S": "acme"}, "keyword_id": {"S": "old#en"}, "keyword": {"S": "old"},
             "_deleted": {"BOOL": True}},
            {"business_id": {"S": "zeta"}, "keyword_id": {"S": "roofer#en"}, "keyword": {"S": "roofer"}},
        ],
        "service_areas": [
            {"business_id": {"S": "acme"}, "area_id": {"S": "austin-tx"}, "city": {"S": "Austin"},
             "state": {"S": "TX"}, "priority": {"N": "1"}},
        ],
        "prompt_templates": [
            {"business_id": {"S": "acme"}, "template_id": {"S": "service#2"}, "page_type": {"S": "service"},
             "version": {"N": "2"}, "required_variables": {"SS": ["city", "name"]}, "is_active": {"BOOL": True},
             "word_count_target": {"N": "900"}},
        ],
    }


class FakeDaemon:
    """A status socket that answers every request with one JSON line, as the daemon does; records requests."""

    def __init__(self, path: Path, answer: dict) -> None:
        self.requests: list[str] = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(4)
        self.answer = answer
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                self.requests.append(conn.makefile().readline().strip())
                conn.sendall(json.dumps(self.answer).encode() + b"\n")

    def close(self) -> None:
        """Stop answering."""
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.thread.join(timeout=5)
