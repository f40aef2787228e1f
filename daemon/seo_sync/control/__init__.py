"""The status socket: server, client, and who may talk to it."""
