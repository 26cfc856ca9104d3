"""RFC 3161 time-stamp request for a packet's manifest, written offline.

A trusted time-stamping authority (TSA) can later attest that the manifest existed
at a given time: send ``manifest.json.tsq`` to one (``curl -H "Content-Type:
application/timestamp-query" --data-binary @manifest.json.tsq URL -o manifest.json.tsr``)
and keep the returned token ``manifest.json.tsr`` in the packet; check it with
``openssl ts -verify -in manifest.json.tsr -queryfile manifest.json.tsq -CAfile TSA.pem``.

The request is the DER ``TimeStampReq`` (RFC 3161 section 2.4.1) of the manifest's
SHA-256 with ``certReq`` true and no nonce, so it is a fixed 59-byte structure that
depends on the digest alone (byte for byte what ``openssl ts -query -sha256 -cert
-no_nonce`` writes) and :func:`borderwatch.products.manifest.verify_packet` can
rebuild it to check it.
"""

from __future__ import annotations

import os
from pathlib import Path

from borderwatch.errors import InputError
from borderwatch.products.export import atomic_write

__all__ = ["TSQ_SUFFIX", "TSR_SUFFIX", "timestamp_request", "write_timestamp_request"]

TSQ_SUFFIX = ".tsq"
TSR_SUFFIX = ".tsr"

#: TimeStampReq SEQUENCE (57 bytes), version 1, MessageImprint SEQUENCE with the
#: AlgorithmIdentifier of SHA-256 (OID 2.16.840.1.101.3.4.2.1, NULL parameters) and
#: the OCTET STRING header of a 32-byte digest.
_HEAD = bytes.fromhex("30390201013031300d060960864801650304020105000420")
#: certReq BOOLEAN TRUE: ask the TSA to include its certificate in the token.
_CERT_REQ = bytes.fromhex("0101ff")


def timestamp_request(sha256_hex: str) -> bytes:
    """DER RFC 3161 ``TimeStampReq`` for a SHA-256 digest (64 hex digits).

    Examples
    --------
    >>> len(timestamp_request("00" * 32))
    59
    """
    try:
        digest = bytes.fromhex(sha256_hex)
    except ValueError as exc:
        raise InputError(f"not a SHA-256 hex digest: {sha256_hex!r}") from exc
    if len(digest) != 32:
        raise InputError(f"not a SHA-256 hex digest: {sha256_hex!r}")
    return _HEAD + digest + _CERT_REQ


def write_timestamp_request(path: str | os.PathLike[str], *, sha256_hex: str) -> Path:
    """Write ``<path>.tsq``, the time-stamp request of the file ``path`` with that digest."""
    p = Path(path)
    tsq = p.with_name(p.name + TSQ_SUFFIX)
    with atomic_write(tsq, overwrite=False) as tmp:
        tmp.write_bytes(timestamp_request(sha256_hex))
    return tsq
