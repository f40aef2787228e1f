"""The daemon process: lifecycle, socket commands, systemd, maintenance, metrics."""
