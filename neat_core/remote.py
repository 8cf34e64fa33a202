"""Where files come from: local folders, or the Hugging Face Hub through huggingface_hub's cache.

One reachability probe serves all code (adapter downloads, timm bases, uploads, the benchmark suites): a TCP
connection to the host of `huggingface_hub.constants.ENDPOINT` (or to the HTTPS proxy that reaches it), with a
short timeout, made once per process. When it fails, or HF_HUB_OFFLINE is set, files come from the cache only
(`huggingface_hub.try_to_load_from_cache`, which makes no request at all), so a missing file fails in seconds
with one message instead of after huggingface_hub's and timm's retries.
"""

from __future__ import annotations

import functools
import os
import re
import socket
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

# "owner/name" as the Hub spells repo ids; anything else is taken for a local path.
REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
PROBE_TIMEOUT = 3.0  # seconds; a reachable Hub answers a TCP connect far faster
_TRUE = ("1", "ON", "YES", "TRUE")


class AdapterNotFoundError(FileNotFoundError):
    """An adapter repo that can be neither downloaded nor found in the local Hugging Face cache."""


class HubUnreachableError(ConnectionError):
    """The Hugging Face Hub is needed (an upload) and cannot be reached, or HF_HUB_OFFLINE is set."""


def offline_mode() -> bool:
    """True when HF_HUB_OFFLINE (or HF_DATASETS_OFFLINE) asks for cached copies only."""
    from huggingface_hub import constants

    return constants.is_offline_mode() or any(
        os.environ.get(v, "").upper() in _TRUE for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def _probe_address() -> tuple[str, int]:
    """(host, port) a connection to the Hub goes to first: its HTTPS proxy if one applies, else the endpoint."""
    from huggingface_hub import constants

    endpoint = urlsplit(constants.ENDPOINT)
    host = endpoint.hostname or "huggingface.co"
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    proxy = urllib.request.getproxies().get(endpoint.scheme or "https")
    if proxy and not urllib.request.proxy_bypass(host):
        parsed = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        return parsed.hostname or host, parsed.port or 3128
    return host, port


@functools.lru_cache(maxsize=1)
def hub_reachable(timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether a TCP connection to the Hub (or its proxy) opens within `timeout` seconds; asked once per process."""
    try:
        socket.create_connection(_probe_address(), timeout=timeout).close()
        return True
    except OSError:
        return False


def hub_unavailable_reason() -> str | None:
    """Why the Hub must not be asked ("HF_HUB_OFFLINE=1 is set", "the Hub cannot be reached"), or None."""
    if offline_mode():
        return "HF_HUB_OFFLINE=1 is set"
    if not hub_reachable():
        return f"the Hugging Face Hub ({_probe_address()[0]}) cannot be reached (no network)"
    return None


def is_repo_id(value: str | os.PathLike) -> bool:
    """Whether `value` names a Hub repo ("owner/name") rather than an existing local path."""
    return isinstance(value, str) and REPO_ID.fullmatch(value) is not None and not Path(value).exists()


def download_adapter(repo_id: str, filenames: tuple[str, ...], revision: str | None) -> Path:
    """The huggingface_hub cache snapshot folder holding `filenames` of adapter repo `repo_id` at `revision`
    (branch, tag or commit; default main), downloaded if needed and possible. All files come from one commit.
    When the Hub is not to be asked (HF_HUB_OFFLINE, or the probe failed) only the cache is read: no request."""
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import (EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError,
                                        RepositoryNotFoundError, RevisionNotFoundError)

    from . import __version__

    at = f"{repo_id}@{revision}" if revision else repo_id
    why = hub_unavailable_reason()
    not_found = AdapterNotFoundError(
        f"Adapter {at!r} is neither a local folder nor in the Hugging Face cache ({constants.HF_HUB_CACHE}), "
        f"and {why or 'the Hub cannot be reached'}. To work offline, download it once while online (`hf download "
        f"{repo_id} {' '.join(filenames)}`), point HF_HUB_CACHE at a cache that has it, or pass the path of a "
        "folder written by neat_core.save_adapter.")
    if why is not None:
        first = cached_file(repo_id, filenames[:1], revision)
        if first is None or any(cached_file(repo_id, (n,), first.parent.name) is None for n in filenames[1:]):
            raise not_found
        return first.parent
    kw = dict(library_name="neat-peft", library_version=__version__)
    try:
        first = Path(hf_hub_download(repo_id, filenames[0], revision=revision, **kw))
        commit = first.parent.name  # cache layout: snapshots/<commit>/<file>
        for name in filenames[1:]:
            hf_hub_download(repo_id, name, revision=commit, **kw)
    except LocalEntryNotFoundError:
        raise not_found from None
    except RevisionNotFoundError:
        raise AdapterNotFoundError(f"Adapter repo {repo_id!r} has no revision {revision!r}.") from None
    except RepositoryNotFoundError:
        raise AdapterNotFoundError(
            f"No Hub repo {repo_id!r} (nor a local folder of that name); if it is private or gated, log in "
            "with `hf auth login` or pass a token.") from None
    except EntryNotFoundError:
        raise AdapterNotFoundError(f"Hub repo {at!r} is not a NEAT adapter: it lacks one of "
                                   f"{', '.join(filenames)}.") from None
    except HfHubHTTPError as err:
        raise AdapterNotFoundError(f"Could not download adapter {at!r} from the Hub: {err}") from None
    return first.parent


def cached_file(repo_id: str, filenames: tuple[str, ...], revision: str | None = None) -> Path | None:
    """The first of `filenames` that the Hugging Face cache holds for `repo_id` at `revision`, or None; no network."""
    from huggingface_hub import try_to_load_from_cache

    for name in filenames:
        found = try_to_load_from_cache(repo_id, name, revision=revision)
        if isinstance(found, str):
            return Path(found)
    return None


def network_errors() -> tuple[type[BaseException], ...]:
    """The exception types of a failed connection from the HTTP clients huggingface_hub may use."""
    found: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for module, name in (("httpx2", "TransportError"), ("httpx", "TransportError"),
                         ("requests.exceptions", "ConnectionError")):
        try:
            found.append(getattr(__import__(module, fromlist=[name]), name))
        except (ImportError, AttributeError):
            continue
    return tuple(found)
