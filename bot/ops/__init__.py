"""Running the bot on a server: shared helpers for operations (locks, backups, upgrades)."""
