"""Hardened XML parsing for uploaded BPMN/DMN.

Uploaded models come from people, not from us: no DTDs (so no XXE and no entity expansion), no
network, and a size cap. We parse with entity resolution off and then refuse any document that
carried a DTD at all, so a "billion laughs" payload is refused rather than silently defused.
"""

from __future__ import annotations

from lxml import etree

from engine.errors import PayloadTooLarge, UnsafeXml

MAX_XML_BYTES = 2 * 1024 * 1024


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_pis=True,
    )


def parse_xml(content: bytes, name: str, max_bytes: int = MAX_XML_BYTES) -> etree._Element:
    """Parse one document or raise ``UnsafeXml``/``PayloadTooLarge`` naming the file."""
    if len(content) > max_bytes:
        raise PayloadTooLarge(
            f"{name} is {len(content)} bytes; the limit is {max_bytes}",
            [{"location": name, "message": f"file exceeds {max_bytes} bytes"}],
        )
    head = content[:4096].upper()
    if b"<!DOCTYPE" in head or b"<!ENTITY" in content.upper():
        raise _refused(name, "DOCTYPE and entity declarations are not allowed")
    try:
        root = etree.fromstring(content, _parser())
    except etree.XMLSyntaxError as exc:
        raise UnsafeXml(
            f"{name} is not well-formed XML", [{"location": f"{name}:{exc.lineno}", "message": str(exc.msg)}]
        ) from None
    tree = root.getroottree()
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None or tree.docinfo.externalDTD is not None:
        raise _refused(name, "DOCTYPE and entity declarations are not allowed")
    if any(isinstance(node, etree._Entity) for node in root.iter()):
        raise _refused(name, "entity references are not allowed")
    return root


def _refused(name: str, message: str) -> UnsafeXml:
    return UnsafeXml(f"{name} was refused: {message}", [{"location": name, "message": message}])
