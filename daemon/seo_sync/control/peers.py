"""Who may talk to the status socket: the configured group, and the peer's credentials (SO_PEERCRED)."""

from __future__ import annotations

import grp
import os
import pwd
import socket
import struct

from seo_sync.errors import ConfigError

SO_PEERGROUPS = getattr(socket, "SO_PEERGROUPS", 59)  # Linux >= 4.13; Python has no constant for it
MAX_PEER_GROUPS = 256


def resolve_group(name: str | None) -> int:
    """The gid of ServiceSettings.socket_group; unset means the daemon's own group (seo-sync in the unit)."""
    if name is None:
        return os.getegid()
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        if name.isdigit():
            return int(name)
        raise ConfigError(f"service.socket_group = {name!r}: no such group",
                          hint="create it (see systemd/seo-sync.sysusers.conf) or unset socket_group") from None


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process that connected, from SO_PEERCRED."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return pid, uid, gid


def peer_groups(sock: socket.socket, uid: int, gid: int) -> set[int]:
    """The peer's supplementary groups (SO_PEERGROUPS), else its groups by name from the user database."""
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, SO_PEERGROUPS, 4 * MAX_PEER_GROUPS)
        return set(struct.unpack(f"{len(raw) // 4}I", raw))
    except OSError:
        pass
    try:
        return set(os.getgrouplist(pwd.getpwuid(uid).pw_name, gid))
    except (KeyError, OSError):
        return set()
