"""Whether a page or an answer shows a secret, without being fooled by chance.

A short secret (a postcode district such as ``BN2``, a UPN's first digits, a local id
such as ``W1``) can occur by chance inside a national id, a sealed value or a hash,
which are runs of random letters and digits: ``W1`` once did, inside a national id, and
failed a CI run. A leaked value starts where a word starts (``BN2 3CD``, ``"H801…``),
so a secret counts as shown when no letter or digit comes just before it.

>>> shows('{"postcode": "BN2 3CD"}', "BN2")
True
>>> shows('{"national_id": "NCVMWEPGZ8W17WDSZZ"}', "W1")
False
>>> shows("record H801200001001", "H801")
True
"""

from __future__ import annotations

import re


def shows(text: str, secret: str) -> bool:
    """Whether ``secret`` occurs in ``text`` other than inside a run of letters and
    digits."""
    return re.search(rf"(?<![A-Za-z0-9]){re.escape(secret)}", text) is not None
