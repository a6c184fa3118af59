"""Callback crypto: the one module that knows how WeCom and WeChat sign and encrypt callbacks.

All SHA1 signing and AES work goes through wechatpy 1.8.18: ``wechatpy.enterprise.crypto``
for WeCom apps (receive id = corp id) and AI bots (receive id ``""``), ``wechatpy.crypto`` for
Official Accounts (receive id = app id). What this module adds is what wechatpy leaves unsafe
or slow on the answer path:

* XML envelopes are read by a bare expat parser that refuses any DTD (so no entity can be
  declared, expanded or fetched) and keeps only the ``Encrypt`` text; ciphertexts are decrypted
  with wechatpy's ``PrpCrypto`` once our signature check has passed, so wechatpy never feeds raw
  XML to xmltodict nor signs twice. ``parse_safe_xml`` (defusedxml) serves the rarer full reads;
* decrypted XML is checked for a DTD in its prolog (the only place one can be), so every payload
  that reaches the inbox is safe for the processor's full parse, without parsing it here;
* every failure becomes one of three typed errors the endpoints turn into HTTP answers.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
from dataclasses import dataclass
from typing import Any, ClassVar, NoReturn
from xml.etree.ElementTree import ParseError
from xml.parsers import expat

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException
from wechatpy.crypto import PrpCrypto as MpPrpCrypto
from wechatpy.crypto import WeChatCrypto as MpCrypto
from wechatpy.enterprise.crypto import PrpCrypto as WecomPrpCrypto
from wechatpy.enterprise.crypto import WeChatCrypto as WecomCrypto
from wechatpy.exceptions import WeChatException
from wechatpy.utils import WeChatSigner


class CallbackError(Exception):
    """A callback that cannot be accepted; ``status`` is the HTTP answer it deserves."""

    status: ClassVar[int] = 400


class SignatureError(CallbackError):
    """The signature does not match: not from the platform (or the wrong token). Store nothing."""

    status = 403


class DecryptError(CallbackError):
    """Signed correctly but the ciphertext does not decrypt (wrong key, wrong receive id)."""


class MalformedCallback(CallbackError):
    """The request is not shaped like a callback: missing parameters, bad XML/JSON, a DTD."""


@dataclass(frozen=True)
class Sealed:
    """An encrypted payload and its ``msg_signature``, as the platform would send them."""

    encrypt: str
    signature: str


def signature_of(token: str, timestamp: str, nonce: str, *data: str) -> str:
    """The platforms' signature: SHA1 of the sorted, concatenated values (wechatpy's signer)."""
    signer = WeChatSigner()
    signer.add_data(token, timestamp, nonce, *data)
    return str(signer.signature)


def signature_matches(signature: str, token: str, timestamp: str, nonce: str, *data: str) -> bool:
    return hmac.compare_digest(signature_of(token, timestamp, nonce, *data), signature)


class CallbackCipher:
    """Signature check and AES for one configured endpoint: token, EncodingAESKey, receive id."""

    def __init__(self, crypto: Any, prp_class: Any, token: str, receive_id: str) -> None:
        self._crypto = crypto
        self._prp_class = prp_class
        self._prp = prp_class(crypto.key)
        self.token = token
        self.receive_id = receive_id

    @classmethod
    def wecom(cls, token: str, encoding_aes_key: str, corp_id: str) -> CallbackCipher:
        """A WeCom self-built app or customer-contact callback (receive id = corp id)."""
        return cls(WecomCrypto(token, encoding_aes_key, corp_id), WecomPrpCrypto, token, corp_id)

    @classmethod
    def aibot(cls, token: str, encoding_aes_key: str) -> CallbackCipher:
        """A WeCom AI bot: the same cipher with an empty receive id (DOC 101033)."""
        return cls(WecomCrypto(token, encoding_aes_key, ""), WecomPrpCrypto, token, "")

    @classmethod
    def mp(cls, token: str, encoding_aes_key: str, app_id: str) -> CallbackCipher:
        """An Official Account in safe mode (receive id = app id)."""
        return cls(MpCrypto(token, encoding_aes_key, app_id), MpPrpCrypto, token, app_id)

    def decrypt(self, signature: str, timestamp: str, nonce: str, encrypt: str) -> str:
        """Check ``msg_signature`` over ``encrypt`` and return the decrypted plaintext."""
        if not signature_matches(signature, self.token, timestamp, nonce, encrypt):
            raise SignatureError("msg_signature does not match")
        return self.decrypt_verified(encrypt)

    def decrypt_verified(self, encrypt: str) -> str:
        """Decrypt ``encrypt`` whose signature the caller has checked (``Targets.pick`` does).

        wechatpy's ``decrypt_message`` would compute the signature again and build a new
        ``PrpCrypto`` each call; its stateless ``PrpCrypto`` is kept and called directly.
        """
        try:
            plaintext = self._prp.decrypt(encrypt, self.receive_id)
        except (WeChatException, ValueError, IndexError, struct.error) as exc:
            raise DecryptError(f"cannot decrypt the payload ({type(exc).__name__})") from None
        return str(plaintext)

    def seal(
        self, plaintext: str, *, timestamp: str, nonce: str, random_prefix: str | None = None
    ) -> Sealed:
        """Encrypt and sign ``plaintext`` as the platform does (for samples and tests).

        ``random_prefix`` (16 characters) replaces the random block, to reproduce published
        ciphertexts.
        """
        prp = self._prp_class(self._crypto.key)
        if random_prefix is not None:
            prp.get_random_string = lambda: random_prefix
        encrypt = prp.encrypt(plaintext, self.receive_id)
        encrypt = encrypt.decode("ascii") if isinstance(encrypt, bytes) else str(encrypt)
        return Sealed(encrypt, signature_of(self.token, timestamp, nonce, encrypt))


def parse_safe_xml(body: bytes | str) -> Any:
    """Parse untrusted XML; a DTD, an entity declaration or an external reference is refused."""
    try:
        return SafeET.fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException:
        raise MalformedCallback("XML with a DTD or entity declarations is refused") from None
    except ParseError as exc:
        raise MalformedCallback(f"body is not well-formed XML ({exc})") from None


class _RefusedDtd(Exception):
    pass


def _refuse_declaration(*_: object) -> NoReturn:
    raise _RefusedDtd


class _EnvelopeReader:
    """Collects the text of the root's first ``Encrypt`` child, as ``findtext`` would.

    A bare expat parser with three small handlers costs a third of defusedxml's pure-Python
    ElementTree parser on the answer path; it refuses a DTD the way defusedxml does (at the
    DOCTYPE, before any declaration inside it is read), so no entity can be declared, expanded
    or fetched.
    """

    def __init__(self) -> None:
        self.depth = 0
        self.inside = False
        self.done = False
        self.parts: list[str] = []

    def start(self, name: str, _attributes: object) -> None:
        self.depth += 1
        self.inside = self.depth == 2 and name == "Encrypt" and not self.done

    def end(self, _name: str) -> None:
        if self.inside:
            self.done = True
        self.inside = False
        self.depth -= 1

    def text(self, data: str) -> None:
        if self.inside:
            self.parts.append(data)


def xml_envelope_encrypt(body: bytes) -> str:
    """The ``Encrypt`` value of ``<xml><ToUserName/><Encrypt/>...</xml>``; nothing else is read."""
    reader = _EnvelopeReader()
    parser = expat.ParserCreate(namespace_separator="}")
    parser.StartDoctypeDeclHandler = _refuse_declaration
    parser.EntityDeclHandler = _refuse_declaration
    parser.ExternalEntityRefHandler = _refuse_declaration
    parser.StartElementHandler = reader.start
    parser.EndElementHandler = reader.end
    parser.CharacterDataHandler = reader.text
    parser.buffer_text = True
    try:
        parser.Parse(body, True)
    except _RefusedDtd:
        raise MalformedCallback("XML with a DTD or entity declarations is refused") from None
    except expat.ExpatError as exc:
        raise MalformedCallback(f"body is not well-formed XML ({exc})") from None
    encrypt = "".join(reader.parts)
    if not encrypt:
        raise MalformedCallback("XML envelope has no Encrypt element")
    return encrypt


def parse_json_object(body: bytes | str) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        raise MalformedCallback("body is not valid JSON") from None
    if not isinstance(value, dict):
        raise MalformedCallback("JSON body is not an object")
    return value


def json_envelope_encrypt(body: bytes, field: str) -> str:
    """The ciphertext of a JSON envelope: ``encrypt`` (AI bot), ``Encrypt`` (Official Account)."""
    encrypt = parse_json_object(body).get(field)
    if not isinstance(encrypt, str) or not encrypt:
        raise MalformedCallback(f"JSON envelope has no {field!r} string")
    return encrypt


def refuse_dtd(plaintext: str) -> str:
    """Return ``plaintext`` if its XML prolog holds no DTD, else raise MalformedCallback.

    A DTD (and with it every entity declaration, internal or external) may only appear before
    the root element, so reading the prolog (declaration, comments, processing instructions)
    is enough; the text inside the message, such as a customer typing ``<!DOCTYPE``, is never
    misread as one.
    """
    pos = 1 if plaintext.startswith("\ufeff") else 0
    end = len(plaintext)
    while pos < end:
        if plaintext[pos].isspace():
            pos += 1
        elif plaintext.startswith("<?", pos):
            close = plaintext.find("?>", pos + 2)
            pos = end if close < 0 else close + 2
        elif plaintext.startswith("<!--", pos):
            close = plaintext.find("-->", pos + 4)
            pos = end if close < 0 else close + 3
        elif plaintext.startswith("<!", pos):
            raise MalformedCallback("decrypted XML declares a DTD; refused")
        else:
            break
    return plaintext


def dedupe_key(source: str, plaintext: str) -> str:
    """The inbox key: a platform retry carries the same plaintext, distinct events never do.

    Hashing the decrypted payload (not the ciphertext, whose random block changes on a retry)
    avoids the docs' FromUserName+CreateTime key, which collapses two external-contact events of
    the same second.
    """
    return f"{source}:{hashlib.sha256(plaintext.encode('utf-8')).hexdigest()}"
