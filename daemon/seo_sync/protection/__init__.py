"""Delete protection: the confirmation token, the delete-rate ledger, backups."""
