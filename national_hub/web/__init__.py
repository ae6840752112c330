"""The ``/ops`` page's template, script and style sheet (a package, so setuptools ships
them as package data; nothing here is Python)."""
