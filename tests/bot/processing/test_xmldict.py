from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import pytest

from bot.processing.xmldict import PayloadError, xml_to_dict
from tests.bot.processing import samples


def element_tree_dict(payload: str) -> Any:
    """The shape the processor has always read, built the slow way (ElementTree)."""

    def convert(element: ET.Element) -> Any:
        children = list(element)
        if not children:
            return element.text or None
        result: dict[str, Any] = {}
        for child in children:
            value = convert(child)
            if child.tag not in result:
                result[child.tag] = value
            elif isinstance(result[child.tag], list):
                result[child.tag].append(value)
            else:
                result[child.tag] = [result[child.tag], value]
        return result

    value = convert(ET.fromstring(payload))
    return value if isinstance(value, dict) else {}


@pytest.mark.parametrize(
    "payload",
    [
        samples.DOC_92130_ADD_EXTERNAL_CONTACT,
        samples.DOC_92130_CHAT_ADD_MEMBER,
        samples.DOC_90240_TEMPLATE_CARD,
        samples.app_message("text", Content="你好 <b>&amp; 再见"),
        "<xml><A>  spaced  </A><B></B><C/><D>text<E>1</E>tail</D></xml>",
        '<xml xmlns:x="urn:x"><x:A>1</x:A><A>2</A></xml>',
        "<xml>just text</xml>",
        '<?xml version="1.0" encoding="utf-8"?><xml><A><![CDATA[a]]><![CDATA[b]]></A></xml>',
    ],
)
def test_the_same_shape_as_an_element_tree(payload: str) -> None:
    assert xml_to_dict(payload) == element_tree_dict(payload)


@pytest.mark.parametrize(
    "payload",
    [
        '<!DOCTYPE x [<!ENTITY e "boom">]><xml><a>&e;</a></xml>',
        '<!DOCTYPE x SYSTEM "http://example.com/x.dtd"><xml/>',
        '<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><a>&e;</a></xml>',
        '<!DOCTYPE x [<!ENTITY a "aa"><!ENTITY b "&a;&a;&a;&a;">]><xml><a>&b;</a></xml>',
        "<xml><a>unclosed</xml>",
        "",
    ],
)
def test_dtds_entities_and_broken_documents_are_refused(payload: str) -> None:
    with pytest.raises(PayloadError, match="payload is not acceptable XML"):
        xml_to_dict(payload)
