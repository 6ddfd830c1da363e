"""Password hashing with scrypt (standard library): memory-hard, salted, parameters stored with the hash."""
from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os

# n=2**14, r=8 costs 16 MiB and ~50 ms per check on one core: slow for a guesser,
# unnoticeable at sign-in. Stored with each hash so they can be raised later.
_N, _R, _P = 2**14, 8, 1
_SALT_BYTES = 16
_KEY_BYTES = 32
_MAXMEM = 64 * 1024 * 1024


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str, *, n: int = _N) -> str:
    """``scrypt$n$r$p$salt$hash`` for ``password``."""
    salt = os.urandom(_SALT_BYTES)
    key = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=_R, p=_P, maxmem=_MAXMEM, dklen=_KEY_BYTES)
    return f"scrypt${n}${_R}${_P}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored``; any malformed hash simply does not match."""
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(key)
        got = hashlib.scrypt(password.encode("utf-8"), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                             maxmem=_MAXMEM, dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


@functools.cache
def dummy_hash() -> str:
    """Checked against when the user name is unknown, so a wrong name costs the same time as a wrong password."""
    return hash_password("not a password")
