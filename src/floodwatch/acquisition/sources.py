"""The STAC catalogs floodwatch can fetch Sentinel-1 from, and what each needs (signing, an account, units).

Only `pc-rtc` serves backscatter floodwatch can map directly (gamma0, terrain-corrected, linear power). The
GRD collections serve uncalibrated digital numbers: they are searchable, and `fetch` says what to do with
them instead of mapping numbers that are not backscatter.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from urllib.parse import urlparse

from ..errors import AcquisitionError

PC_URL = "https://planetarycomputer.microsoft.com/api/stac/v1"
UNITS = ("auto", "db", "linear", "dn")
PC_KEY_HINT = ("a Planetary Computer account: set PC_SDK_SUBSCRIPTION_KEY to your API key "
               "(https://planetarycomputer.microsoft.com/account/request)")
GRD_ADVICE = ("use `source` pc-rtc (terrain-corrected gamma0), or calibrate the GRD to sigma0/gamma0 dB with "
              "ESA SNAP (or pyroSAR, ASF HyP3 RTC) and map that GeoTIFF with `floodwatch map`")


@dataclass(frozen=True)
class Source:
    name: str
    url: str  # STAC API root
    collection: str
    units: str  # pixel values of the VV/VH assets: 'linear' power, 'db', 'dn' (uncalibrated) or 'auto' (by item)
    signing: str | None = None  # 'planetary-computer': SAS tokens from the planetary-computer package
    access: str = "nothing (public)"  # what a 401/403/409 means the user lacks, in words
    description: str = ""

    def with_url(self, url: str | None) -> "Source":
        """The same source through another API root (a mirror, a proxy, a test server)."""
        return self if not url else replace(self, url=url.rstrip("/"))


SOURCES: dict[str, Source] = {s.name: s for s in (
    Source("pc-rtc", PC_URL, "sentinel-1-rtc", "linear", "planetary-computer", PC_KEY_HINT,
           "Planetary Computer Sentinel-1 RTC: gamma0 in linear power, 10 m, terrain-corrected (needs an account)"),
    Source("pc-grd", PC_URL, "sentinel-1-grd", "dn", "planetary-computer", "a Planetary Computer SAS token "
           "(anonymous; set PC_SDK_SUBSCRIPTION_KEY for higher limits)",
           "Planetary Computer Sentinel-1 GRD: uncalibrated digital numbers"),
    Source("earth-search-grd", "https://earth-search.aws.element84.com/v1", "sentinel-1-grd", "dn", None,
           "AWS credentials for a requester-pays bucket (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, "
           "AWS_REQUEST_PAYER=requester)", "Element 84 Earth Search Sentinel-1 GRD: uncalibrated digital numbers"),
    Source("cdse-grd", "https://stac.dataspace.copernicus.eu/v1", "sentinel-1-grd", "dn", None,
           "a Copernicus Data Space account: S3 keys in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY with "
           "AWS_S3_ENDPOINT=eodata.dataspace.copernicus.eu",
           "Copernicus Data Space Sentinel-1 GRD (COG): uncalibrated digital numbers"),
)}
DEFAULT_SOURCE = "pc-rtc"


def resolve_source(name: str | None = None, *, collection: str | None = None, url: str | None = None,
                   units: str = "auto") -> Source:
    """A registered source by name, or any STAC API by URL (then `collection` is required).

    `url` replaces a registered source's API root and `collection` its collection (whose units are then found
    from the items and pixels, as for a URL); `units` other than 'auto' overrides what the source says.
    """
    if units not in UNITS:
        raise AcquisitionError(f"units: '{units}' is not one of {', '.join(UNITS)}")
    name = name or DEFAULT_SOURCE
    if name in SOURCES:
        src = SOURCES[name].with_url(url)
        if collection and collection != src.collection:
            # the units are the registered collection's: another one's are found from its items and pixels
            src = replace(src, collection=collection, units="auto")
    elif urlparse(name).scheme in ("http", "https"):
        if not collection:
            raise AcquisitionError(f"collection: needed with a STAC API URL as `source` ({name})")
        pc = urlparse(name).hostname == urlparse(PC_URL).hostname
        src = Source(name, name.rstrip("/"), collection, "auto", "planetary-computer" if pc else None,
                     PC_KEY_HINT if pc else "an account or token of that catalog",
                     f"STAC API {name}")
    else:
        raise AcquisitionError(f"source: '{name}' is neither a known source ({', '.join(SOURCES)}) "
                               "nor an http(s) STAC API URL")
    return src if units == "auto" else replace(src, units=units)
