"""Ed25519 keys and detached signatures of evidence packets.

A packet is signed by a detached signature over the exact bytes of its
``manifest.json`` (RFC 8032 Ed25519, through the ``cryptography`` library), stored
beside it as ``manifest.json.sig``: a small JSON document with the signature, the
signer's public key and its fingerprint. Since the manifest holds the SHA-256 of
every other file, the signature covers the whole packet; editing a chip and
re-hashing it in the manifest breaks the signature.

The fingerprint of a public key is the SHA-256 of its DER SubjectPublicKeyInfo,
the same as ``openssl pkey -pubin -in KEY.pub -outform DER | sha256sum``. Private
keys are unencrypted PKCS #8 PEM files, written with mode 0600; only the public
key ever goes into a packet.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from borderwatch.errors import InputError, OutputExistsError, OutputWriteError, SigningKeyError
from borderwatch.products.export import atomic_write

__all__ = [
    "PRIVATE_NAME",
    "PUBLIC_NAME",
    "SIGNATURE_SUFFIX",
    "KeyPair",
    "check_signature",
    "fingerprint",
    "generate_keys",
    "load_private_key",
    "load_public_key",
    "packet_signer",
    "sign_file",
    "warn_if_signature_dropped",
]

log = logging.getLogger(__name__)

PRIVATE_NAME = "borderwatch-signing.key"
PUBLIC_NAME = "borderwatch-signing.pub"
SIGNATURE_SUFFIX = ".sig"
_FORMAT = "borderwatch-signature/1"


@dataclass(frozen=True)
class KeyPair:
    """Files written by :func:`generate_keys`."""

    private: Path
    public: Path
    fingerprint: str


def fingerprint(key: Ed25519PublicKey) -> str:
    """``sha256:<hex>`` of the key's DER SubjectPublicKeyInfo."""
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "sha256:" + hashlib.sha256(der).hexdigest()


def _public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def generate_keys(out_dir: str | os.PathLike[str]) -> KeyPair:
    """Write a new Ed25519 key pair into ``out_dir`` (created if missing).

    The private key file is created with mode 0600 and never replaced.

    Raises
    ------
    OutputExistsError
        A key file of that name exists already.
    OutputWriteError
        The folder cannot be created or written.
    """
    folder = Path(out_dir)
    private, public = folder / PRIVATE_NAME, folder / PUBLIC_NAME
    for p in (private, public):
        if p.exists():
            raise OutputExistsError(f"{p}: key file exists; keys are never overwritten")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        # O_EXCL: refuse a file that appeared since the check; 0600 from the start.
        fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
    except FileExistsError as exc:
        raise OutputExistsError(f"{private}: key file exists; keys are never overwritten") from exc
    except OSError as exc:
        raise OutputWriteError(f"{private}: cannot write the key ({exc.strerror})") from exc
    with atomic_write(public, overwrite=False) as tmp:
        tmp.write_bytes(_public_pem(key.public_key()))
    return KeyPair(private, public, fingerprint(key.public_key()))


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"{path}: cannot read the {what} ({exc.strerror})") from exc


def load_private_key(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    """Read an unencrypted PEM Ed25519 private key.

    Raises
    ------
    SigningKeyError
        Missing or unreadable file, not a PEM private key, encrypted, or not Ed25519.
    """
    p = Path(path)
    data = _read(p, "signing key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError as exc:  # cryptography: "Password was not given but ..."
        raise SigningKeyError(f"{p}: the key is encrypted; give an unencrypted key") from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        hint = "; that is a public key" if b"PUBLIC KEY" in data else ""
        raise SigningKeyError(f"{p}: not a PEM private key{hint}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{p}: not an Ed25519 key; make one with 'borderwatch keygen'")
    return key


def load_public_key(path: str | os.PathLike[str]) -> Ed25519PublicKey:
    """Read a PEM Ed25519 public key (as written by :func:`generate_keys`).

    Raises
    ------
    SigningKeyError
        Missing or unreadable file, a private key, not PEM, or not Ed25519.
    """
    p = Path(path)
    data = _read(p, "public key")
    if b"PRIVATE KEY" in data:
        raise SigningKeyError(f"{p}: this is a private key; give the public key ({PUBLIC_NAME})")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise SigningKeyError(f"{p}: not a PEM public key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(f"{p}: not an Ed25519 public key")
    return key


def sign_file(path: str | os.PathLike[str], key: Ed25519PrivateKey) -> Path:
    """Write ``<path>.sig``: the Ed25519 signature of ``path``'s bytes and the public key."""
    p = Path(path)
    data = p.read_bytes()
    public = key.public_key()
    doc = {
        "format": _FORMAT,
        "algorithm": "Ed25519",
        "file": p.name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "fingerprint": fingerprint(public),
        "public_key": _public_pem(public).decode("ascii"),
        "signature": base64.b64encode(key.sign(data)).decode("ascii"),
    }
    sig = p.with_name(p.name + SIGNATURE_SUFFIX)
    with atomic_write(sig, overwrite=False) as tmp:
        tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return sig


def _signature_doc(sig: Path) -> dict[str, Any]:
    try:
        doc = json.loads(sig.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{sig}: cannot read the signature ({exc})") from exc
    keys = ("format", "fingerprint", "public_key", "signature")
    if not isinstance(doc, dict) or not all(isinstance(doc.get(k), str) for k in keys):
        raise InputError(f"{sig}: not a borderwatch signature (needs {', '.join(keys)})")
    if doc["format"] != _FORMAT:
        raise InputError(f"{sig}: unknown signature format {doc['format']!r}")
    return doc


def check_signature(
    path: str | os.PathLike[str], *, key: Ed25519PublicKey | None = None
) -> tuple[str, list[str]]:
    """Check ``<path>.sig`` against ``path``'s bytes.

    Parameters
    ----------
    path : path
        The signed file (``manifest.json``).
    key : Ed25519PublicKey, optional
        The trusted public key. Without it the signature is checked against the
        public key stored in the signature file, which shows the file is unchanged
        since that key signed it, not who holds the key.

    Returns
    -------
    fingerprint : str
        Fingerprint of the key stored in the signature file.
    problems : list of str
        One line per problem; empty when the signature is good.

    Raises
    ------
    InputError
        The signature file is not a readable borderwatch signature.
    """
    p = Path(path)
    sig = p.with_name(p.name + SIGNATURE_SUFFIX)
    doc = _signature_doc(sig)
    try:
        stored = serialization.load_pem_public_key(doc["public_key"].encode("ascii"))
        signature = base64.b64decode(doc["signature"], validate=True)
    except (ValueError, UnsupportedAlgorithm, binascii.Error) as exc:
        raise InputError(f"{sig}: malformed public key or signature ({exc})") from exc
    if not isinstance(stored, Ed25519PublicKey):
        raise InputError(f"{sig}: the stored public key is not Ed25519")
    problems = []
    if fingerprint(stored) != doc["fingerprint"]:
        problems.append(f"signature: {sig.name} fingerprint does not match its public key")
    if key is not None and fingerprint(key) != fingerprint(stored):
        problems.append(
            f"signature: signed by {doc['fingerprint']}, not by the given key {fingerprint(key)}"
        )
    # Against the stored key: a given key is either that key (the same check) or another
    # one, already reported; either way this tells whether the manifest is intact.
    try:
        stored.verify(signature, p.read_bytes())
    except InvalidSignature:
        problems.append(f"signature: does not match {p.name} (the manifest was changed)")
    return doc["fingerprint"], problems


def packet_signer(path: str | os.PathLike[str]) -> str | None:
    """Fingerprint stored in ``<path>.sig``; None when there is no readable signature."""
    p = Path(path)
    sig = p.with_name(p.name + SIGNATURE_SUFFIX)
    if not sig.is_file() or sig.is_symlink():
        return None
    try:
        return str(_signature_doc(sig)["fingerprint"])
    except InputError:
        return None


def warn_if_signature_dropped(
    manifest: str | os.PathLike[str], *, sign_key: Ed25519PrivateKey | None
) -> None:
    """Warn (log) when the signed packet of ``manifest`` is about to be replaced unsigned."""
    signer = packet_signer(manifest)
    if signer is not None and sign_key is None:
        log.warning(
            "%s: the packet replaced was signed by key %s; this one is not signed "
            "(give --sign-key to sign it)",
            Path(manifest).parent,
            signer,
        )
