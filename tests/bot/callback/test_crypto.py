"""The platforms' own published sample values, and the envelope's defences."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.callback.crypto import (
    CallbackCipher,
    DecryptError,
    MalformedCallback,
    SignatureError,
    dedupe_key,
    json_envelope_encrypt,
    parse_safe_xml,
    refuse_dtd,
    signature_matches,
    signature_of,
    xml_envelope_encrypt,
)

# WeCom 加解密方案说明 (DOC 90968 / 91144) sample.
WECOM_TOKEN = "QDG6eK"
WECOM_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
WECOM_CORP = "wx5823bf96d3bd56c7"
WECOM_ECHO = (
    "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ=="
)
WECOM_ENCRYPT = (
    "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3Qczc"
    "dCUpj911L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qL"
    "jvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LU"
    "Mnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUP"
    "A3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ"
    "2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q=="
)
WECOM_ENVELOPE = (
    f"<xml><ToUserName><![CDATA[{WECOM_CORP}]]></ToUserName>\n"
    f"<Encrypt><![CDATA[{WECOM_ENCRYPT}]]></Encrypt>\n"
    "<AgentID><![CDATA[218]]></AgentID>\n</xml>"
).encode()
WECOM_PLAINTEXT = (
    "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>\n"
    "<FromUserName><![CDATA[mycreate]]></FromUserName>\n"
    "<CreateTime>1409659813</CreateTime>\n"
    "<MsgType><![CDATA[text]]></MsgType>\n"
    "<Content><![CDATA[hello]]></Content>\n"
    "<MsgId>4561255354251345929</MsgId>\n"
    "<AgentID>218</AgentID>\n"
    "</xml>"
)

# WeChat Official Account WXBizMsgCrypt sample (random block "aaaabbbbccccdddd").
MP_TOKEN = "pamtest"
MP_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
MP_APP_ID = "wxb11529c136998cb6"
MP_REPLY = "我是中文abcd123"
MP_REPLY_ENCRYPT = (
    "jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg=="
)
MP_REPLY2 = (
    "<xml><ToUserName><![CDATA[oia2Tj我是中文jewbmiOUlr6X-1crbLOvLw]]></ToUserName>"
    "<FromUserName><![CDATA[gh_7f083739789a]]></FromUserName><CreateTime>1407743423</CreateTime>"
    "<MsgType><![CDATA[video]]></MsgType><Video><MediaId><![CDATA[eYJ1MbwPRJtOvIEabaxHs7TX2D-HV"
    "71s79GUxqdUkjm6Gs2Ed1KF3ulAOA9H1xG0]]></MediaId><Title><![CDATA[testCallBackReplyVideo]]>"
    "</Title><Description><![CDATA[testCallBackReplyVideo]]></Description></Video></xml>"
)
MP_REPLY2_ENCRYPT = (
    "jn1L23DB+6ELqJ+6bruv23M2GmYfkv0xBh2h+XTBOKVKcgDFHle6gqcZ1cZrk3e1qjPQ1F4RsLWzQRG9udbKWesxlk"
    "upqcEcW7ZQweImX9+wLMa0GaUzpkycA8+IamDBxn5loLgZpnS7fVAbExOkK5DYHBmv5tptA9tklE/fTIILHR8HLX"
    "a5nQvFb3tYPKAlHF3rtTeayNf0QuM+UW/wM9enGIDIJHF7CLHiDNAYxr+r+OrJCmPQyTy8cVWlu9iSvOHPT/77bZ"
    "qJucQHQ04sq7KZI27OcqpQNSto2OdHCoTccjggX5Z9Mma0nMJBU+jLKJ38YB1fBIz+vBzsYjrTmFQ44YfeEuZ+xR"
    "TQwr92vhA9OxchWVINGC50qE/6lmkwWTwGX9wtQpsJKhP+oS7rvTY8+VdzETdfakjkwQ5/Xka042OlUb1/slTwo4"
    "RscuQ+RdxSGvDahxAJ6+EAjLt9d8igHngxIbf6YyqqROxuxqIeIch3CssH/LqRs+iAcILvApYZckqmA7FNERspKA"
    "5f8GoJ9sv8xmGvZ9Yrf57cExWtnX8aCMMaBropU/1k+hKP5LVdzbWCG0hGwx/dQudYR/eXp3P0XxjlFiy+9DMlaF"
    "ExWUZQDajPkdPrEeOwofJb"
)

LAUGHS = "".join(f' <!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)).replace(
    "&lol0;", "lol"
)
BILLION_LAUGHS = (
    f'<?xml version="1.0"?><!DOCTYPE xml [{LAUGHS}]>'
    "<xml><ToUserName>&lol9;</ToUserName><Encrypt>abc</Encrypt></xml>"
)


def external_entity(path: Path) -> str:
    return (
        f'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY xxe SYSTEM "file://{path}">]>'
        "<xml><ToUserName>&xxe;</ToUserName><Encrypt>abc</Encrypt></xml>"
    )


def wecom_cipher() -> CallbackCipher:
    return CallbackCipher.wecom(WECOM_TOKEN, WECOM_KEY, WECOM_CORP)


def test_wecom_doc_url_verification_sample() -> None:
    echo = wecom_cipher().decrypt(
        "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3", "1409659589", "263014780", WECOM_ECHO
    )
    assert echo == "1616140317555161061"


def test_wecom_doc_message_sample() -> None:
    encrypt = xml_envelope_encrypt(WECOM_ENVELOPE)
    assert encrypt == WECOM_ENCRYPT
    plaintext = wecom_cipher().decrypt(
        "477715d11cdb4164915debcba66cb864d751f3e6", "1409659813", "1372623149", encrypt
    )
    assert plaintext == WECOM_PLAINTEXT


def test_wechatpy_enterprise_sample() -> None:
    """wechatpy's own test vector (tests/test_crypto.py, token 123456)."""
    cipher = CallbackCipher.wecom(
        "123456", "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR", "wx49f0ab532d5d035a"
    )
    echo = cipher.decrypt(
        "dd6b9c95b495b3f7e2901bfbc76c664930ffdb96",
        "1411443780",
        "437374425",
        "4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q==",
    )
    assert echo
    with pytest.raises(SignatureError):
        cipher.decrypt(
            "dd6b9c95b495b3f7e2901bfbc76c664930ffdb96",
            "1411443780",
            "437374424",
            "4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q==",
        )


def test_official_account_published_ciphertexts() -> None:
    cipher = CallbackCipher.mp(MP_TOKEN, MP_KEY, MP_APP_ID)
    for plaintext, published in ((MP_REPLY, MP_REPLY_ENCRYPT), (MP_REPLY2, MP_REPLY2_ENCRYPT)):
        sealed = cipher.seal(
            plaintext, timestamp="1409304348", nonce="xxxxxx", random_prefix="aaaabbbbccccdddd"
        )
        assert sealed.encrypt == published
        assert cipher.decrypt(sealed.signature, "1409304348", "xxxxxx", published) == plaintext


def test_official_account_plain_signature_sample() -> None:
    """wechatpy's tests/test_utils.py vector."""
    good, bad = (
        "f21891de399b4e33a1a93c9a7b8a8fffb5a443ff",
        "f21891de399b4e33a1a93c9a7b8a8fffb5a443fe",
    )
    assert signature_matches(good, "test", "1410685589", "test")
    assert not signature_matches(bad, "test", "1410685589", "test")


def test_wrong_signature_is_a_signature_error() -> None:
    with pytest.raises(SignatureError):
        wecom_cipher().decrypt("0" * 40, "1409659813", "1372623149", WECOM_ENCRYPT)


def test_wrong_receive_id_is_a_decrypt_error() -> None:
    other_corp = CallbackCipher.wecom(WECOM_TOKEN, WECOM_KEY, "ww-other-corp")
    with pytest.raises(DecryptError):
        other_corp.decrypt(
            "477715d11cdb4164915debcba66cb864d751f3e6", "1409659813", "1372623149", WECOM_ENCRYPT
        )


@pytest.mark.parametrize("encrypt", ["not base64!", "QUJD", "", "A" * 64])
def test_undecryptable_ciphertext_is_a_decrypt_error(encrypt: str) -> None:
    signature = signature_of(WECOM_TOKEN, "1", "n", encrypt)
    with pytest.raises(DecryptError):
        wecom_cipher().decrypt(signature, "1", "n", encrypt)


def test_seal_round_trips_unicode() -> None:
    cipher = CallbackCipher.aibot("tok", WECOM_KEY)
    message = '{"text": {"content": "你好 👋"}}'
    sealed = cipher.seal(message, timestamp="1700000000", nonce="abc")
    assert cipher.decrypt(sealed.signature, "1700000000", "abc", sealed.encrypt) == message


def test_billion_laughs_refused_in_envelope() -> None:
    with pytest.raises(MalformedCallback, match="DTD"):
        xml_envelope_encrypt(BILLION_LAUGHS.encode())


def test_external_entity_refused_and_never_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    with pytest.raises(MalformedCallback, match="DTD") as info:
        xml_envelope_encrypt(external_entity(secret).encode())
    assert "TOP-SECRET" not in str(info.value)


def test_external_dtd_refused() -> None:
    body = b'<?xml version="1.0"?><!DOCTYPE xml SYSTEM "http://127.0.0.1:9/x.dtd"><xml/>'
    with pytest.raises(MalformedCallback):
        parse_safe_xml(body)


@pytest.mark.parametrize(
    "body",
    [b"", b"garbage", b"<xml><Encrypt>abc</Encrypt>", b"<xml><ToUserName>x</ToUserName></xml>"],
)
def test_malformed_envelopes(body: bytes) -> None:
    with pytest.raises(MalformedCallback):
        xml_envelope_encrypt(body)


@pytest.mark.parametrize(
    "body",
    [
        WECOM_ENVELOPE,
        b"<xml><Encrypt>a</Encrypt><Encrypt>b</Encrypt></xml>",
        b"<xml><Encrypt><![CDATA[ab]]>c<![CDATA[d]]></Encrypt></xml>",
        b"<xml><Encrypt>a<b>inner</b>tail</Encrypt></xml>",
        b"<xml><Wrap><Encrypt>deep</Encrypt></Wrap><Encrypt>top</Encrypt></xml>",
        b"<?xml version='1.0' encoding='utf-8'?><!-- c --><xml><Encrypt>x&amp;y</Encrypt></xml>",
        b"<xml><e:Encrypt xmlns:e='urn:x'>ns</e:Encrypt><Encrypt>plain</Encrypt></xml>",
    ],
)
def test_envelope_reader_agrees_with_elementtree(body: bytes) -> None:
    """The lean expat reader returns what defusedxml + ``findtext("Encrypt")`` would."""
    assert xml_envelope_encrypt(body) == parse_safe_xml(body).findtext("Encrypt")


@pytest.mark.parametrize(
    "body",
    [
        b"<xml><Encrypt>&undeclared;</Encrypt></xml>",
        b"<xml><Wrap><Encrypt>deep only</Encrypt></Wrap></xml>",
        b"<Encrypt>root only</Encrypt>",
        b"<xml><Encrypt>a</Encrypt></xml><xml/>",
    ],
)
def test_envelope_reader_refuses(body: bytes) -> None:
    with pytest.raises(MalformedCallback):
        xml_envelope_encrypt(body)


def test_decrypt_verified_skips_only_the_signature() -> None:
    assert wecom_cipher().decrypt_verified(WECOM_ENCRYPT) == WECOM_PLAINTEXT
    other_corp = CallbackCipher.wecom(WECOM_TOKEN, WECOM_KEY, "ww-other-corp")
    with pytest.raises(DecryptError):
        other_corp.decrypt_verified(WECOM_ENCRYPT)


@pytest.mark.parametrize(
    "body", [b"", b"[1]", b'{"encrypt": 3}', b'{"other": "x"}', b"[" * 100_000, b"\xff"]
)
def test_malformed_json_envelopes(body: bytes) -> None:
    with pytest.raises(MalformedCallback):
        json_envelope_encrypt(body, "encrypt")


@pytest.mark.parametrize(
    "plaintext",
    [
        BILLION_LAUGHS,
        '<!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]><xml>&x;</xml>',
        '\ufeff<?xml version="1.0"?>\n<!-- note --><!DOCTYPE xml><xml/>',
        "  <!ENTITY x 'y'><xml/>",
    ],
)
def test_dtd_in_decrypted_xml_refused(plaintext: str) -> None:
    with pytest.raises(MalformedCallback, match="DTD"):
        refuse_dtd(plaintext)


@pytest.mark.parametrize(
    "plaintext",
    [
        WECOM_PLAINTEXT,
        '<?xml version="1.0" encoding="utf-8"?>\n<!-- <!DOCTYPE x> --><xml/>',
        "<xml><Content><![CDATA[see <!DOCTYPE html> and <!ENTITY>]]></Content></xml>",
    ],
)
def test_xml_without_dtd_passes(plaintext: str) -> None:
    assert refuse_dtd(plaintext) == plaintext


def test_dedupe_key() -> None:
    key = dedupe_key("wecom:sales", WECOM_PLAINTEXT)
    assert key == dedupe_key("wecom:sales", WECOM_PLAINTEXT)
    assert key.startswith("wecom:sales:")
    assert len(key) <= 200
    assert key != dedupe_key("wecom:contacts", WECOM_PLAINTEXT)
    assert key != dedupe_key("wecom:sales", WECOM_PLAINTEXT.replace("1409659813", "1409659814"))
