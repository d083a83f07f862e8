"""Real servers the tests talk to (SFTP today), started as pytest fixtures."""
