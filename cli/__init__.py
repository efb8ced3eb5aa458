"""The `crlkit` command line: thin click commands over the library (installed as crlkit.cli)."""
