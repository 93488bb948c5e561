"""Who made a bundle: an optional Ed25519 signature of its manifest (docs/manifest.md, "Signed bundles").

A bundle's hashes prove that its files are the ones its manifest lists, not who wrote the manifest:
anyone can edit it and record its hash again. `vgpt-export --sign KEY` adds `signature.json` beside
the manifest: the Ed25519 signature of the exact bytes of `manifest.json` (which holds the sha256 of
every graph file, so the signature covers them all) and the signer's public key. A runtime given
trusted public keys (`vgpt-run --trusted-key`, `load_model(..., trusted_keys=...)`, the C API's
`trusted_keys` option) loads only a bundle signed by one of them: "run only what our CI built".

Keys are PEM files as OpenSSL writes them (PKCS#8 private keys, SubjectPublicKeyInfo public keys), so
`openssl genpkey -algorithm ed25519` keys work too. The `cryptography` library (the `signing` extra)
is imported only when a key is used.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from vgpt.atomic import atomic_file
from vgpt.export.contract import MANIFEST, BundleError
from vgpt.untrusted import read_json_object

SIGNATURE = "signature.json"
SIGNATURE_FORMAT = "vgpt-ed25519-signature"
MAX_KEY_BYTES = 16 << 10  # a PEM Ed25519 key is about 120 bytes


def _crypto():
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError as err:
        raise BundleError("signatures need the cryptography library: pip install 'vgpt[signing]'") from err
    return serialization, ed25519


def _read_key_file(path: str | Path) -> bytes:
    path = Path(path)
    if not path.is_file():
        raise BundleError(f"key file {path} does not exist")
    data = path.read_bytes()[: MAX_KEY_BYTES + 1]
    if len(data) > MAX_KEY_BYTES:
        raise BundleError(f"{path} is not an Ed25519 PEM key (more than {MAX_KEY_BYTES} bytes)")
    return data


def new_signing_key(path: str | Path) -> Path:
    """Write a new Ed25519 private key to `path` (mode 0600, refused if it exists) and its public key to
    `path.pub`; returns the public key's path, the file to hand to the runtimes."""
    serialization, ed25519 = _crypto()
    path, public = Path(path), Path(f"{path}.pub")
    for p in (path, public):
        if p.exists():
            raise BundleError(f"{p} exists: a signing key is never overwritten; choose another path")
    key = ed25519.Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())  # fmt: skip
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private_pem)
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))  # fmt: skip
    return public


def load_signing_key(path: str | Path):
    """The Ed25519 private key in the PEM file `path`."""
    serialization, ed25519 = _crypto()
    try:
        key = serialization.load_pem_private_key(_read_key_file(path), password=None)
    except (ValueError, TypeError) as err:
        raise BundleError(f"{path} is not an unencrypted PEM private key ({err}); make one with "
                          "vgpt-export --new-signing-key PATH") from err  # fmt: skip
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise BundleError(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    return key


def load_public_key(path: str | Path):
    """The Ed25519 public key in the PEM file `path` (the `.pub` file --new-signing-key writes)."""
    serialization, ed25519 = _crypto()
    try:
        key = serialization.load_pem_public_key(_read_key_file(path))
    except (ValueError, TypeError) as err:
        raise BundleError(f"{path} is not a PEM public key ({err}); pass the .pub file of the signing key") from err
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise BundleError(f"{path} holds a {type(key).__name__}, not an Ed25519 public key")
    return key


def _raw(public_key) -> bytes:
    serialization, _ = _crypto()
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def sign_bundle(folder: str | Path, key) -> Path:
    """Write `signature.json` for the manifest in `folder` (atomically); returns its path."""
    folder = Path(folder)
    signature = key.sign((folder / MANIFEST).read_bytes())
    document = {"format": SIGNATURE_FORMAT, "public_key": _raw(key.public_key()).hex(), "signature": signature.hex()}
    with atomic_file(folder / SIGNATURE, "w") as f:
        json.dump(document, f, indent=2)
    return folder / SIGNATURE


def check_signature(root: Path, trusted_keys: Sequence[str | Path], manifest_bytes: bytes) -> None:
    """Refuse the bundle `root` unless `signature.json` is a valid signature of `manifest_bytes` (the
    manifest as it will be parsed) by one of `trusted_keys` (PEM public key files)."""
    from cryptography.exceptions import InvalidSignature

    keys = [load_public_key(k) for k in trusted_keys]
    file = root / SIGNATURE
    if not file.is_file():
        raise BundleError(f"{root} is not signed (no {SIGNATURE}) and trusted keys were given: load only bundles "
                          "signed with vgpt-export --sign by a trusted key")  # fmt: skip
    fix = f"sign it again with vgpt-export --sign, or remove {SIGNATURE}"
    doc = read_json_object(file, BundleError, fix)
    try:
        if doc.get("format") != SIGNATURE_FORMAT:
            raise ValueError(f"format {doc.get('format')!r}, expected {SIGNATURE_FORMAT!r}")
        signer, signature = bytes.fromhex(doc["public_key"]), bytes.fromhex(doc["signature"])
    except (KeyError, TypeError, ValueError) as err:
        raise BundleError(f"{file} is not a vgpt signature ({err}); {fix}") from err
    key = next((k for k in keys if _raw(k) == signer), None)
    if key is None:
        raise BundleError(f"{root} is signed by key {signer.hex()[:16]}..., which is none of the trusted keys "
                          f"({len(keys)} given): it was not built by whom you trust; do not load it")  # fmt: skip
    try:
        key.verify(signature, manifest_bytes)
    except InvalidSignature as err:
        raise BundleError(f"{root}: the signature in {SIGNATURE} does not match {MANIFEST}: the manifest was "
                          "changed after it was signed; do not load it") from err  # fmt: skip
