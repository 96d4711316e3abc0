"""Sidecars: XMP files (darktable, Lightroom, digiKam) and Google Takeout JSON.

Each is parsed on its own into a `sidecars` row keyed by its content hash; which media
file it describes is worked out from names in SQL (the `sidecar_links` view), so the
link follows renames without re-reading anything.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any
from xml.etree import ElementTree as ET


MAX_SIDECAR_BYTES = 8 * 1024 * 1024
_NS = {
    "x": "adobe:ns:meta/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "xmp": "http://ns.adobe.com/xap/1.0/",
    "exif": "http://ns.adobe.com/exif/1.0/",
    "photoshop": "http://ns.adobe.com/photoshop/1.0/",
    "dc": "http://purl.org/dc/elements/1.1/",
    "lr": "http://ns.adobe.com/lightroom/1.0/",
    "digiKam": "http://www.digikam.org/ns/1.0/",
}
_ISO = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?")


class SidecarError(ValueError):
    """The sidecar is not well-formed XMP or Takeout JSON."""


class NotAPhotoSidecar(SidecarError):
    """JSON, but not a photo's sidecar (a Takeout album's metadata.json): unsupported."""


_YEAR_MONTH = re.compile(r"(\d{4})(?:-(\d{2}))?")


def _iso_local(s: str | None) -> datetime | None:
    """XMP dates ('2019-07-14T10:00:00.25+02:00') as the local wall time they name, to the
    fraction of a second they give (a burst's frames, as EXIF's sub-seconds); a date XMP
    gives only to the year or month (`2015`, `2015-03`: a scanned print's) as its first day."""
    m = _ISO.match(s or "")
    if m:
        *whole, fraction = m.groups()
        parts = [int(x) if x else 0 for x in whole] + [int((fraction or "0")[:6].ljust(6, "0"))]
    elif (m := _YEAR_MONTH.fullmatch((s or "").strip())) is not None:
        parts = [int(m.group(1)), int(m.group(2) or 1), 1]
    else:
        return None
    try:
        return datetime(*parts)  # type: ignore[arg-type]
    except ValueError:
        return None


_OFFSET = re.compile(r"^([+-])(\d{2}):?([0-5]\d)$")


def utc_offset(s: str | None) -> str | None:
    """A UTC offset as EXIF and XMP write it (+02:00; some software leaves out the colon,
    +0530), written +05:30, kept only within the range real time zones use, -12:00 to
    +14:00."""
    m = _OFFSET.match((s or "").strip())
    if not m:
        return None
    minutes = (int(m.group(2)) * 60 + int(m.group(3))) * (-1 if m.group(1) == "-" else 1)
    return f"{m.group(1)}{m.group(2)}:{m.group(3)}" if -12 * 60 <= minutes <= 14 * 60 else None


def _offset(s: str | None) -> str | None:
    """The offset from UTC a date ends with (`utc_offset`; `Z` is `+00:00`)."""
    m = re.search(r"(?<=\d)([+-]\d{2}:?\d{2})$|Z$", s or "")
    return None if not m else ("+00:00" if m.group(0) == "Z" else utc_offset(m.group(1)))


# An entity declaration in each encoding an XML parser reads by itself (UTF-8 and ASCII,
# UTF-16 and UTF-32 either way round): entities can expand a small file into gigabytes.
_ENTITY = tuple("<!ENTITY".encode(e) for e in ("utf-8", "utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"))


def declares_entities(data: bytes) -> bool:
    """Whether XML bytes declare entities, in whichever encoding they are written."""
    return any(e in data for e in _ENTITY)


# XMP's GPSCoordinate: "DDD,MM,SSk" or "DDD,MM.mmk", k the reference (N, S, E, W); some
# software writes decimal degrees before it ("52.5208N").
_XMP_GPS = re.compile(r"^\s*(\d{1,3}(?:\.\d+)?)(?:,(\d{1,2}(?:\.\d+)?))?(?:,(\d{1,2}(?:\.\d+)?))?\s*([NSEWnsew])\s*$")


def xmp_coordinate(s: str | None, axis: str) -> float | None:
    """Decimal degrees (south and west negative) of an XMP GPSCoordinate on `axis`
    ("lat": N or S, at most 90; "lon": E or W, at most 180); None for anything else:
    minutes or seconds of 60 and more, minutes beside decimal degrees, the wrong axis."""
    m = _XMP_GPS.match(s or "")
    if not m:
        return None
    degrees, minutes, seconds, ref = m.group(1), m.group(2), m.group(3), m.group(4).upper()
    if ref not in ("NS" if axis == "lat" else "EW") or ("." in degrees and minutes is not None):
        return None
    if float(minutes or 0) >= 60 or float(seconds or 0) >= 60 or ("." in (minutes or "") and seconds is not None):
        return None
    value = float(degrees) + float(minutes or 0) / 60 + float(seconds or 0) / 3600
    if value > (90 if axis == "lat" else 180):
        return None
    return -value if ref in "SW" and value else value


def parse_xmp(data: bytes) -> dict[str, Any]:
    if len(data) > MAX_SIDECAR_BYTES:
        raise SidecarError(f"XMP sidecar over {MAX_SIDECAR_BYTES // 1_048_576} MiB")
    if declares_entities(data):
        raise SidecarError("XMP with entity declarations is refused")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        raise SidecarError(f"not well-formed XMP: {e}") from None
    except LookupError as e:  # an encoding no codec has (`encoding="x-bogus"`)
        raise SidecarError(f"XMP in an unknown encoding: {e}") from None

    from .image import exif_datetime  # Pillow, which a scan that reads no XMP never needs

    # The packet's own descriptions: those of rdf:RDF, not those of documents it embeds
    # (Photoshop's `xmpMM:Pantry` holds each placed file's, keywords and dates too).
    rdf_ns = "{" + _NS["rdf"] + "}"
    top = [d for rdf in root.iter(rdf_ns + "RDF") for d in rdf.findall(rdf_ns + "Description")]

    def prop(name: str) -> str | None:
        prefix, local = name.split(":")
        ns = "{" + _NS[prefix] + "}" + local
        for el in top:
            if ns in el.attrib:
                return el.attrib[ns]
            child = el.find(ns)
            if child is not None:
                if child.text and child.text.strip():
                    return child.text.strip()
                # Where XMP puts a value: in an `rdf:Alt`, `rdf:Seq` or `rdf:Bag` (a
                # language alternative): not anywhere below, which a hostile nesting of
                # descriptions in the property would make quadratic.
                li = child.find("rdf:*/rdf:li", _NS)
                if li is not None and li.text:
                    return li.text.strip()
        return None

    li_tag = "{" + _NS["rdf"] + "}li"

    def bag(name: str) -> list[str]:
        """The items (`rdf:li`) anywhere under the property's elements in the packet's own
        descriptions, each once, in document order: one walk of each, so a hostile
        nesting of the property in itself costs no more than its size."""
        prefix, local = name.split(":")
        tag = "{" + _NS[prefix] + "}" + local
        out: dict[str, None] = {}
        stack: list[ET.Element] = [el for d in reversed(top) for el in reversed(d.findall(tag))]
        while stack:
            el = stack.pop()
            if el.tag == li_tag and el.text and el.text.strip():
                out[el.text.strip()] = None
            stack.extend(reversed(el))
        return list(out)

    # The first of the date properties that reads as a date: a camera's placeholder
    # (`0000:00:00 00:00:00`) or an impossible date gives way to the next, and its offset
    # goes with it.
    date_s, taken = None, None
    for name in ("exif:DateTimeOriginal", "photoshop:DateCreated", "xmp:CreateDate"):
        text = prop(name)
        when = (_iso_local(text) or exif_datetime(text)) if text else None
        if when:
            date_s, taken = text, when
            break
    rating = prop("xmp:Rating")
    try:
        rating_v = int(float(rating)) if rating is not None else None
    except (ValueError, OverflowError):  # not a number, or 1e400
        rating_v = None
    flat = bag("dc:subject")
    # Lightroom puts `|` between levels, digiKam `/`. A Lightroom level that holds `/`
    # itself (`Music|AC/DC`) cannot be written with `/` between levels: it is left out
    # here, so no tag is made of it and export never touches it.
    # darktable's own tags (`darktable|format|cr2`, `darktable|changed`), which it keeps
    # there for itself, are no keywords of the photo; nor are their levels as flat keywords
    # (`cr2`, which exports of versions that took them for tags wrote there).
    lightroom, digikam = bag("lr:hierarchicalSubject"), bag("digiKam:TagsList")
    darktable = {level for k in lightroom for level in k.split("|") if k.split("|", 1)[0] == "darktable"}
    darktable |= {level for k in digikam for level in k.split("/") if k.split("/", 1)[0] == "darktable"}
    lightroom = [k for k in lightroom if k.split("|", 1)[0] != "darktable"]
    hierarchical = ([k.replace("|", "/") for k in lightroom if "/" not in k] if lightroom
                    else [k for k in digikam if k.split("/", 1)[0] != "darktable"])
    levels = {level for k in hierarchical for level in k.split("/")}
    keywords = [k for k in flat if k not in darktable or k in levels]
    lat, lon = xmp_coordinate(prop("exif:GPSLatitude"), "lat"), xmp_coordinate(prop("exif:GPSLongitude"), "lon")

    return {
        "format": "xmp",
        "taken_at": taken,
        "taken_offset": _offset(date_s) if date_s else None,
        "rating": rating_v if rating_v is None or -1 <= rating_v <= 5 else None,
        "title": prop("dc:title"),
        "description": prop("dc:description"),
        "keywords": keywords or None,
        "hierarchical_keywords": hierarchical or None,
        "gps_lat": lat if lat is not None and lon is not None else None,
        "gps_lon": lon if lat is not None and lon is not None else None,
    }


def _on_globe(v: Any, limit: int) -> bool:
    """A JSON number within ±limit degrees (NaN and infinities are not)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and -limit <= v <= limit


def parse_takeout(data: bytes) -> dict[str, Any]:
    if len(data) > MAX_SIDECAR_BYTES:
        raise SidecarError(f"JSON sidecar over {MAX_SIDECAR_BYTES // 1_048_576} MiB")
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise SidecarError(f"not valid JSON: {e}") from None
    except RecursionError:
        raise SidecarError("JSON nested too deeply to read") from None
    if not isinstance(doc, dict) or not ({"photoTakenTime", "creationTime", "geoData"} & doc.keys()):
        # An album's metadata.json, print-subscriptions.json...: JSON, but no photo's.
        raise NotAPhotoSidecar("JSON that describes no photo (no photoTakenTime, creationTime or geoData: an "
                               "album's metadata.json?)")
    # When it was taken; `creationTime` is when it was uploaded, no date taken.
    taken = None
    ts = doc["photoTakenTime"].get("timestamp") if isinstance(doc.get("photoTakenTime"), dict) else None
    try:
        # Whole seconds as text (what Takeout writes) or a number, either one with a
        # fraction; not `true`, which int() takes as 1. 0, the epoch, is no date taken
        # but a placeholder, as text or as a number.
        seconds = int(float(ts)) if isinstance(ts, (str, int, float)) and not isinstance(ts, bool) else 0
        taken = datetime.fromtimestamp(seconds, timezone.utc).replace(tzinfo=None) if seconds else None
    except (ValueError, TypeError, OverflowError, OSError):  # text, out of range
        taken = None
    geo = doc.get("geoData") if isinstance(doc.get("geoData"), dict) else {}
    lat, lon = geo.get("latitude"), geo.get("longitude")
    # Numbers on the globe only (not NaN, not 500, not an integer of 400 digits, which no
    # float holds); 0, 0 is Takeout's "no place".
    has_geo = _on_globe(lat, 90) and _on_globe(lon, 180) and bool(lat or lon)
    people_list = doc.get("people")
    people = [p.get("name") for p in people_list if isinstance(p, dict) and isinstance(p.get("name"), str)] \
        if isinstance(people_list, list) else []
    return {
        "format": "takeout",
        "taken_at": taken,
        "taken_offset": "+00:00" if taken else None,
        "rating": 5 if doc.get("favorited") is True else None,
        "title": doc.get("title") if isinstance(doc.get("title"), str) else None,
        "description": doc.get("description") or None if isinstance(doc.get("description"), str) else None,
        "keywords": people or None,
        "hierarchical_keywords": None,
        "gps_lat": float(lat) if has_geo else None,
        "gps_lon": float(lon) if has_geo else None,
    }


def parse_sidecar(path: str | bytes, name: str) -> dict[str, Any] | None:
    """The sidecar row, or None for a sidecar kind we do not read (.srt, .cue ...)."""
    lower = name.lower()
    if not (lower.endswith(".xmp") or lower.endswith(".json")):
        return None
    with open(path, "rb") as f:
        data = f.read(MAX_SIDECAR_BYTES + 1)
    return parse_xmp(data) if lower.endswith(".xmp") else parse_takeout(data)
