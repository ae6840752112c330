"""The pages' style sheets, served at ``/static/…`` by server_common.headers (a package,
so setuptools ships them as package data; nothing here is Python)."""
