"""Deterministic, DNS-1123-safe names and label values for the Jobs a backfill creates."""

from __future__ import annotations

import hashlib
import re

# A Job's name is a DNS-1123 subdomain, but its pods get a label ``job-name`` with the same value,
# and label values stop at 63 characters: a longer Job name would make its pods fail validation.
MAX_NAME = 63
MAX_LABEL_VALUE = 63
HASH_CHARS = 10

_NOT_DNS = re.compile(r"[^a-z0-9-]+")
_NOT_LABEL = re.compile(r"[^A-Za-z0-9_.-]+")


def dns_label(text: str) -> str:
    """``text`` lower-cased with every run of other characters turned into one ``-``, trimmed."""
    return _NOT_DNS.sub("-", text.lower()).strip("-")


def digest(*parts: str, length: int = HASH_CHARS) -> str:
    """A short hex digest of ``parts`` (joined unambiguously): equal inputs give equal names."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:length]


def job_name(prefix: str, *identity: str, max_length: int = MAX_NAME) -> str:
    """``<prefix>-<digest of identity>``: at most ``max_length`` characters, DNS-1123, deterministic.

    The readable ``prefix`` (say the CronJob and the customer) is cut to make room for the digest;
    the digest of the full identity (DAG, run, cluster, customer...) keeps two runs apart, and the
    same identity always gives the same name, so a retry finds the Job its first try created.
    """
    suffix = digest(prefix, *identity)
    head = dns_label(prefix)[: max_length - len(suffix) - 1].rstrip("-")
    return f"{head}-{suffix}" if head else suffix


def label_value(text: str) -> str:
    """A valid label value for ``text``: 63 characters at most, alphanumeric at both ends.

    A value that had to change (too long, or characters a label cannot hold, like the ``:`` and
    ``+`` of a run id) ends with a digest of the original, so two different originals never share
    a label; keep the original in an annotation when it matters.
    """
    clean = _NOT_LABEL.sub("-", text).strip("-_.")
    if clean == text and len(text) <= MAX_LABEL_VALUE:
        return text
    suffix = digest(text, length=8)
    head = clean[: MAX_LABEL_VALUE - len(suffix) - 1].strip("-_.")
    return f"{head}-{suffix}" if head else suffix
