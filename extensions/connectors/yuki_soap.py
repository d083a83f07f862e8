"""Yuki's SOAP web services: the one place their wire details live.

What is confirmed by public sources and what is assumed is listed in
``docs/connectors/yuki.md``; correct an assumption here and nowhere else.

* SOAP 1.1 over HTTPS: ``POST {YUKI_BASE_URL}{Service}.asmx`` with ``Content-Type:
  text/xml; charset=utf-8`` and ``SOAPAction: "http://www.theyukicompany.com/<Operation>"``,
  the operation's element in the namespace ``http://www.theyukicompany.com/``.
* The session parameter is spelt ``sessionID`` on most services, ``sessionId`` on Sales
  and Purchase (:data:`SESSION_PARAMETER`).
* Answers are parsed with lxml without DTDs, entities or network access (as intake parses
  invoices), and a ``soap:Fault`` becomes the contract's typed error (:meth:`YukiApi.fault`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils.translation import gettext as _
from lxml import etree

from extensions.api import ApiClient, Response
from extensions.connectors.base import (
    ClientRefused,
    ConnectorError,
    PermanentError,
    ReauthorizationRequired,
    TransientError,
)

DEFAULT_BASE_URL = "https://api.yukiworks.be/ws/"
NAMESPACE = "http://www.theyukicompany.com/"
SOAP_NAMESPACE = "http://schemas.xmlsoap.org/soap/envelope/"
CONTENT_TYPE = "text/xml; charset=utf-8"
MAX_ANSWER = 2 * 1024 * 1024  # a domain's administrations, a page of search results
# Sales and Purchase spell it differently from the other services.
SESSION_PARAMETER = {"Sales": "sessionId", "Purchase": "sessionId"}
# Yuki counts its daily calls per domain; the count starts again at midnight, Belgian time.
YUKI_TIME = ZoneInfo("Europe/Brussels")

_PARSER = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    dtd_validation=False,
    huge_tree=False,
    remove_pis=True,
    remove_comments=True,
)


def base_url() -> str:
    url = getattr(settings, "YUKI_BASE_URL", "") or DEFAULT_BASE_URL
    return url if url.endswith("/") else url + "/"


def until_tomorrow(now: datetime | None = None) -> float:
    """Seconds until the next midnight in Brussels, when Yuki's daily count starts again."""
    now = (now or datetime.now(YUKI_TIME)).astimezone(YUKI_TIME)
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), YUKI_TIME)
    # In UTC: between two times of one zone Python counts wall-clock hours, not real ones.
    return max(1.0, (midnight.astimezone(UTC) - now.astimezone(UTC)).total_seconds())


def envelope(operation: str, parameters: dict[str, object]) -> bytes:
    """The SOAP 1.1 request for ``operation``; values are escaped by lxml."""
    soap = etree.Element(etree.QName(SOAP_NAMESPACE, "Envelope"), nsmap={"soap": SOAP_NAMESPACE})
    body = etree.SubElement(soap, etree.QName(SOAP_NAMESPACE, "Body"))
    call = etree.SubElement(body, etree.QName(NAMESPACE, operation), nsmap={None: NAMESPACE})
    for name, value in parameters.items():
        etree.SubElement(call, etree.QName(NAMESPACE, name)).text = str(value)
    return etree.tostring(soap, xml_declaration=True, encoding="utf-8")


def parse(data: bytes):
    """The root of an XML answer, or None: never a DTD, an entity or a network fetch."""
    if not data or b"<!DOCTYPE" in data.upper():
        return None
    try:
        root = etree.fromstring(data, _PARSER)
    except (etree.LxmlError, ValueError):
        return None
    if root.getroottree().docinfo.internalDTD is not None:
        return None
    return root


def _local(element) -> str:
    return etree.QName(element).localname if isinstance(element.tag, str) else ""


def _child(element, name: str):
    for child in element:
        if _local(child) == name:
            return child
    return None


def _text(element, name: str) -> str:
    found = _child(element, name)
    return (found.text or "").strip() if found is not None else ""


class SessionExpired(TransientError):
    """Yuki no longer knows the session: authenticate again (once) and repeat the call."""


class YukiApi(ApiClient):
    """One kept-alive connection to Yuki's services; :meth:`call` sends one operation."""

    def __init__(self, access_key: str):
        super().__init__(base_url(), secrets=[access_key], max_body=MAX_ANSWER)
        self.access_key = access_key

    def call(self, service: str, operation: str, parameters: dict[str, object]):
        """The operation's ``<Operation>Result`` element (None when empty), or raise."""
        response = self.request(
            "POST",
            f"{service}.asmx",
            headers={
                "Content-Type": CONTENT_TYPE,
                "SOAPAction": f'"{NAMESPACE}{operation}"',
                "Accept": "text/xml",
            },
            data=envelope(operation, parameters),
        )
        root = parse(response.body) if response.complete else None
        body = _child(root, "Body") if root is not None else None
        answer = _child(body, f"{operation}Response") if body is not None else None
        if answer is None:
            raise TransientError(
                _("Yuki gave an answer to %(operation)s that could not be read.")
                % {"operation": operation}
            )
        return _child(answer, f"{operation}Result")

    def session_call(self, service, operation, session_id, parameters=None):
        """An operation that needs the session, under the service's spelling of it."""
        name = SESSION_PARAMETER.get(service, "sessionID")
        return self.call(service, operation, {name: session_id, **(parameters or {})})

    # --- what went wrong ---

    def classify(self, response: Response) -> ConnectorError | None:
        """ASMX answers a fault with HTTP 500 and a ``soap:Fault`` body; read it."""
        root = parse(response.body) if response.complete else None
        body = _child(root, "Body") if root is not None else None
        fault = _child(body, "Fault") if body is not None else None
        if fault is None:
            return None  # a 5xx without a fault: the default mapping (transient)
        return self.fault(_text(fault, "faultstring"), _text(fault, "detail"))

    def fault(self, reason: str, detail: str = "") -> ConnectorError:
        said = self.redactor.one_line(f"{reason} ({detail})" if detail else reason)
        lowered = reason.lower()
        if "daily limit" in lowered:
            return TransientError(
                _("Yuki's daily limit of web-service calls is reached (%(said)s).")
                % {"said": said},
                retry_after=until_tomorrow(),
            )
        if "session" in lowered and any(
            word in lowered for word in ("invalid", "expired", "not valid", "unknown")
        ):
            return SessionExpired(_("Yuki ended the session (%(said)s).") % {"said": said})
        if "authenticat" in lowered or "access key" in lowered:
            return ReauthorizationRequired(
                _(
                    "Yuki refused the web-service access key (%(said)s): enter a valid key "
                    "on the extension's Manage page."
                )
                % {"said": said}
            )
        if "administration" in lowered:
            return ClientRefused(
                _(
                    "Yuki refused the client's administration (%(said)s): choose it again on "
                    "the client's Integrations tab."
                )
                % {"said": said}
            )
        return PermanentError(_("Yuki refused it: %(said)s") % {"said": said})

    # --- the operations used ---

    def authenticate(self) -> str:
        """A new session id for the access key's domain."""
        result = self.call("Archive", "Authenticate", {"accessKey": self.access_key})
        session_id = (result.text or "").strip() if result is not None else ""
        if not session_id:
            raise ReauthorizationRequired(
                _("Yuki did not open a session with this web-service access key.")
            )
        self.hide(session_id)
        return session_id

    def administrations(self, session_id: str) -> list[dict[str, str]]:
        """Every administration the key's domain holds: id, name, VAT number."""
        result = self.session_call("AccountingInfo", "Administrations", session_id)
        found = []
        for element in result.iter() if result is not None else ():
            if _local(element) == "Administration" and element.get("ID"):
                found.append(
                    {
                        "id": element.get("ID").strip(),
                        "name": _text(element, "Name"),
                        "vat": _text(element, "VATNumber"),
                    }
                )
        return found

    def find_document(
        self, session_id: str, file_name: str, folder: int, administration: str
    ) -> str:
        """The id of a document named ``file_name`` in this folder and administration,
        or ""; Yuki searches by text, so the name is compared exactly afterwards."""
        result = self.session_call(
            "Archive",
            "SearchDocuments",
            session_id,
            {
                "searchText": file_name,
                "searchOption": "All",
                "folderID": folder,
                "startRecord": 1,
                "numberOfRecords": 100,
                "sortOrder": "CreatedDesc",
                "startDate": "0001-01-01",
                "endDate": "0001-01-01",
            },
        )
        for element in result.iter() if result is not None else ():
            if _local(element) != "Document" or not element.get("ID"):
                continue
            names = {_text(element, "FileName"), _text(element, "Subject")}
            owner = _text(element, "AdministrationID")
            in_folder = _text(element, "Folder") in ("", str(folder))
            if file_name in names and owner in ("", administration) and in_folder:
                return element.get("ID").strip()
        return ""

    def upload(
        self, session_id: str, file_name: str, data: str, folder: int, administration: str
    ) -> str:
        result = self.session_call(
            "Archive",
            "UploadDocument",
            session_id,
            {
                "fileName": file_name,
                "data": data,
                "folder": folder,
                "administrationID": administration,
            },
        )
        document_id = (result.text or "").strip() if result is not None else ""
        if not document_id:
            raise PermanentError(_("Yuki did not take the document (it returned no id)."))
        return document_id
