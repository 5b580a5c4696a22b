"""Signing asset hrefs where the catalog requires it: Planetary Computer blob storage takes a SAS token
that the `planetary-computer` package fetches (with PC_SDK_SUBSCRIPTION_KEY from the environment or
~/.planetarycomputer/settings.env, as that package reads it)."""
from __future__ import annotations

import os
from typing import Callable
from urllib.parse import urlparse

from ..errors import AccessError, AcquisitionError, RateLimitError
from .search import DENIED, Retries

BLOB_DOMAIN = ".blob.core.windows.net"
SECRET_KEYS = ("sig", "signature", "token", "x-amz-signature", "x-amz-security-token", "x-amz-credential")


def no_signing(href: str) -> str:
    return href


def planetary_computer_signer(collection: dict, *, label: str, retries: Retries = Retries()) -> Callable[[str], str]:
    """A function href -> signed href for one Planetary Computer collection.

    The storage account and container come from the blob URL or, for hrefs elsewhere (a mirror), from the
    collection's `msft:storage_account` / `msft:container`. One token per container, cached by the package.
    """
    try:
        import planetary_computer
        from planetary_computer.settings import Settings
    except ImportError:
        raise AcquisitionError("planetary-computer is not installed (it signs Planetary Computer assets): "
                               "pip install 'floodwatch[fetch]'") from None
    import requests

    Settings.get.cache_clear()  # read the key and token URL from the environment now, not at first import
    needs_account = bool(collection.get("msft:requires_account"))
    has_key = bool(Settings.get().subscription_key)
    cid = collection.get("id", "?")

    def sign(href: str) -> str:
        parsed = urlparse(href)
        if parsed.scheme not in ("http", "https"):
            return href
        if {"se", "sig"} & {part.split("=", 1)[0].lower() for part in parsed.query.split("&")}:
            return href  # signed already (a mirror, a saved search): a second token is a request that may be refused
        if parsed.netloc.endswith(BLOB_DOMAIN):
            account, container = parsed.netloc.split(".")[0], parsed.path.lstrip("/").split("/")[0]
        else:
            account, container = collection.get("msft:storage_account"), collection.get("msft:container")
            if not (account and container):
                return href
        token_url = f"{Settings.get().sas_url}/{account}/{container}"  # where get_token asks
        try:
            token = planetary_computer.sas.get_token(account, container, retry_total=retries.attempts,
                                                     retry_backoff_factor=retries.backoff_s)
        except requests.HTTPError as exc:
            code = exc.response.status_code if exc.response is not None else None
            if code in DENIED:
                why = ("PC_SDK_SUBSCRIPTION_KEY is not set" if not has_key
                       else "the key in PC_SDK_SUBSCRIPTION_KEY was refused")
                need = f"'{cid}' requires an account" if needs_account else f"'{cid}' needs a token"
                raise AccessError(f"{label}: SAS token refused (HTTP {code}): {need} and {why}; set "
                                  "PC_SDK_SUBSCRIPTION_KEY to your Planetary Computer API key "
                                  "(https://planetarycomputer.microsoft.com/account/request)") from None
            raise AcquisitionError(f"{label}: SAS token request to {token_url} failed (HTTP {code})") from None
        except requests.exceptions.RetryError:
            raise RateLimitError(f"{label}: SAS token endpoint {token_url} rate limited (HTTP 429) after "
                                 f"{retries.attempts} retries with back-off; wait a few minutes and run "
                                 "again") from None
        except requests.RequestException as exc:
            raise AcquisitionError(f"{label}: SAS token request to {token_url} failed "
                                   f"({type(exc).__name__})") from None
        return f"{href}{'&' if parsed.query else '?'}{token.token}"

    return sign


def missing_key_note(collection: dict) -> str | None:
    """One line to print before fetching when the collection needs an account and no key is set."""
    if collection.get("msft:requires_account") and not os.environ.get("PC_SDK_SUBSCRIPTION_KEY"):
        try:
            from planetary_computer.settings import Settings
        except ImportError:
            return None  # the signer says so

        Settings.get.cache_clear()
        if not Settings.get().subscription_key:
            return (f"note: '{collection.get('id')}' requires a Planetary Computer account and "
                    "PC_SDK_SUBSCRIPTION_KEY is not set; the token request may be refused")
    return None


def redact(href: str) -> str:
    """An href without query parameters that carry secrets (SAS signatures, presigned-URL credentials)."""
    parsed = urlparse(href)
    if not parsed.query:
        return href
    keys = {part.split("=", 1)[0].lower() for part in parsed.query.split("&")}
    return parsed._replace(query="").geturl() if keys & set(SECRET_KEYS) or "se" in keys else href
