"""URLs as logs, error messages and answers show them: without the password they may carry.

A state store's URL (`postgresql://gitopsd:PASSWORD@db/gitopsd`, or `?password=`) and a
repository's (`https://bot:TOKEN@git.example.com/infra.git`) are written with their
credentials; whatever names them to a person names them through `redacted`.
"""

from __future__ import annotations

import re

_URL_PASSWORD = re.compile(r"(://[^:/@]*:)[^@/]*@")
_PARAMETER_PASSWORD = re.compile(r"(password=)[^&\s]*", re.IGNORECASE)


def redacted(url: str) -> str:
    """The URL without its password, fit for logs and error messages."""
    return _PARAMETER_PASSWORD.sub(r"\1***", _URL_PASSWORD.sub(r"\1***@", url))
