"""What every outbound HTTP integration decides the same way, once.

``adapters.httpx``, ``adapters.requests`` and ``adapters.aiohttp`` each hook
their client's own per-hop extension point (an event hook, an ``HTTPAdapter``,
a client middleware). On every hop (the first request, each redirect, retry
and authentication re-send) they ask ``Outbound.header_value`` what the id
header must be, and write the answer with their library's header API. The
rules:

- The id is read when the hop is sent: outside any unit of work there is none,
  and nothing is generated.
- A header the caller set (any case, any value, empty included) is theirs: it
  is never replaced or removed, on any hop or host.
- ``hosts``: ``None`` sends to every host; otherwise only to the hosts listed
  (``"api.internal"`` exactly, ``".internal"`` that domain and its subdomains,
  ``"*"`` any host; an empty list nowhere). On a redirect to a host not listed,
  the id an earlier hop added is taken off again.

To tell its own header from the caller's, an integration remembers what it
added on the request, in a way the library carries from hop to hop.
"""

from __future__ import annotations

from correlation._config import _check_header_name, shown
from correlation._context import get_request_id

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any
del TYPE_CHECKING

#: What a ``hosts`` entry may not hold: it names a host, nothing else.
_NOT_IN_A_HOST = frozenset(" \t\r\n/\\?#@")


class AddedId(str):
    """An id an integration put on a request, told apart from the caller's by type.

    For clients that carry a request's header values, objects and all, from
    one hop to the next (requests copies them onto redirects and
    authentication re-sends): the next hop still knows which value is the
    integration's own. On the wire it is an ordinary str.
    """

    __slots__ = ()


class Outbound:
    """The header name and the ``hosts`` allow-list of one outbound integration.

    Both are checked here, so a bad one fails when the integration is built,
    with a message naming the argument.
    """

    __slots__ = ("_dotted_suffixes", "_everywhere", "_exact", "_host_of", "header_name")

    def __init__(
        self,
        header_name: object = "X-Request-ID",
        hosts: object = None,
        host_of: Callable[[Any], str] = str,
    ) -> None:
        self.header_name = _check_header_name(header_name)
        #: The host of a hop's URL, as the integration's library gives the URL;
        #: called only when there is an id to send and a list to check.
        self._host_of = host_of
        self._everywhere = hosts is None
        exact: set[str] = set()
        suffixes: list[str] = []
        for entry in _entries(hosts):
            if entry == "*":
                self._everywhere = True
            elif entry.startswith("."):
                domain = entry[1:]
                exact.add(domain)
                suffixes.append("." + domain)
            else:
                exact.add(entry)
        self._exact = frozenset(exact)
        self._dotted_suffixes = tuple(suffixes)

    def __repr__(self) -> str:
        if self._everywhere:
            hosts = "every host"
        else:
            listed = sorted(
                {*self._exact} - {s[1:] for s in self._dotted_suffixes}
            ) + sorted(self._dotted_suffixes)
            hosts = ", ".join(listed) if listed else "no host"
        return f"<correlation outbound {self.header_name} to {hosts}>"

    def sends_to(self, host: str) -> bool:
        """Whether *host* (as a URL gives it, any case) is one the id goes to."""
        if self._everywhere:
            return True
        host = host.lower().strip("[]").rstrip(".")
        if host in self._exact:
            return True
        # A '.domain' entry names DNS names under it; an IP address is no
        # such name (127.0.0.1 is not "under" .0.0.1).
        return not _is_ip_address(host) and host.endswith(self._dotted_suffixes)

    def idle(self, added: str | None) -> bool:
        """Whether a hop needs no look at its headers at all.

        True outside any unit of work when nothing this integration added can
        be on the request: there is no id to send and none to take off.
        """
        return added is None and get_request_id() is None

    def header_value(self, url: Any, sent: str | None, added: str | None) -> str | None:
        """The value the id header must have on this hop, ``None`` for none.

        *url* is the hop's URL, as the library gives it; ``host_of`` reads its
        host, only when there is an id and a list to check it against. *sent*
        is the header as the hop carries it (``None`` when absent); *added* is
        what this integration put there on an earlier hop, if it is still
        there. When the answer equals *sent*, nothing changes: the caller's
        own header, or ours again.
        """
        if sent is not None and sent != added:
            return sent  # the caller's own
        request_id = get_request_id()
        if request_id is None:
            return None
        if self._everywhere or self.sends_to(self._host_of(url)):
            return request_id
        return None


def _entries(hosts: object) -> Iterable[str]:
    """The ``hosts`` entries, normalised: lowercase, no brackets, no trailing dot."""
    if hosts is None:
        return ()
    if isinstance(hosts, (str, bytes)) or not isinstance(
        hosts, (list, tuple, set, frozenset)
    ):
        raise TypeError(
            f"hosts must be None or a list of host names, got {shown(hosts)};"
            f" a single host is a list of one, e.g. ['api.internal']"
        )
    return [_entry(entry) for entry in hosts]


def _entry(entry: object) -> str:
    if not isinstance(entry, str):
        raise TypeError(f"hosts entries must be str, got {shown(entry)}")
    if entry == "*":
        return entry
    if not entry.isascii() or not entry.isprintable():
        raise ValueError(
            f"hosts entries must be ASCII host names (IDNs in their xn-- form),"
            f" got {shown(entry)}"
        )
    if _NOT_IN_A_HOST.intersection(entry) or "*" in entry:
        raise ValueError(
            f"hosts entries must be a host name, '.domain' or '*', without a"
            f" scheme, path, user or space, got {shown(entry)}"
        )
    host = entry.lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        if not _is_ipv6(host):
            raise ValueError(
                f"hosts entries in brackets must be IPv6 addresses, got {shown(entry)}"
            )
        return host
    if ":" in host and not _is_ipv6(host):
        raise ValueError(
            f"hosts entries must not hold a port (ports are ignored), got"
            f" {shown(entry)}"
        )
    host = host.rstrip(".")
    if host.lstrip(".") == "" or host.startswith(".."):
        raise ValueError(
            f"hosts entries must name a host or a '.domain', got {shown(entry)}"
        )
    return host


def _is_ip_address(host: str) -> bool:
    """Whether a URL's host is an IP address: IPv6 has colons, IPv4 only digits."""
    return ":" in host or host.replace(".", "").isdigit()


def _is_ipv6(text: str) -> bool:
    import ipaddress  # only when hosts are checked, not with the module

    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True
