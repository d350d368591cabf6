"""Studies from a PACS over DICOMweb (PS3.18): QIDO-RS to find, WADO-RS to pull, STOW-RS to
store (used by ``medlens.interop.stow``), on ``dicomweb-client``.

A study is named by a URL::

    dicomweb://HOST:PORT/dicom-web/studies/<StudyInstanceUID>[/series/<SeriesInstanceUID>]
    dicomwebs://...   (the same over TLS)

Everything before ``/studies/`` is the service root (``http(s)://HOST:PORT/dicom-web``).
Without a series the study must hold one image series (SR, SEG, KO, PR series are not
images); otherwise the error lists them, as a folder of several series does.

The instances go through the same assembly as a series folder
(``medlens.study.readers.dicom.read_datasets``: geometry sort, 4D, Modality LUT, windows), so
a pulled study is indistinguishable from the same files on disk; de-identification happens
next, in the pipeline, before anything reaches a model. The pixel cap is checked from the
WADO-RS metadata before any pixel is downloaded.

Credentials never come from a flag value (it would land in shell history and ``ps``):

- ``MEDLENS_PACS_AUTH_FILE`` (or the ``auth_file`` option / ``--auth-file``): a file whose
  first line is ``Bearer <token>`` or ``Basic <user>:<password>``;
- else ``MEDLENS_PACS_TOKEN`` (a bearer token);
- else ``MEDLENS_PACS_USER`` and ``MEDLENS_PACS_PASSWORD`` (HTTP basic).

``MEDLENS_PACS_TIMEOUT`` (seconds, default 60 to read, 10 to connect) and
``MEDLENS_PACS_RETRIES`` (default 3: connection failures and 429/502/503/504 answers, with
exponential back-off) tune the transport; ``REQUESTS_CA_BUNDLE`` names a private CA for TLS.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from medlens import config
from medlens.errors import (
    ConfigError,
    NoPixelDataError,
    PacsError,
    PacsUnavailableError,
    require,
)
from medlens.study.readers import check_pixel_count

if TYPE_CHECKING:
    from pydicom import Dataset

    from medlens.types import Study

SCHEMES = {"dicomweb": "http", "dicomwebs": "https"}
NON_IMAGE_MODALITIES = frozenset(
    {"SR", "SEG", "KO", "PR", "RTSTRUCT", "RTPLAN", "RTRECORD", "REG", "FID", "DOC", "RWV"}
)
"""Series modalities that hold no images (PS3.3 C.7.3.1.1.1), skipped when a study URL has
to choose its image series."""
DEFAULT_TIMEOUT_S = 60.0
CONNECT_TIMEOUT_S = 10.0
DEFAULT_RETRIES = 3
T = TypeVar("T")

# DICOM JSON tags (PS3.18 F.2) read from QIDO and metadata answers.
TAG_SOP_CLASS = "00080016"
TAG_SOP_INSTANCE = "00080018"
TAG_MODALITY = "00080060"
TAG_SERIES_DESCRIPTION = "0008103E"
TAG_STUDY_UID = "0020000D"
TAG_SERIES_UID = "0020000E"
TAG_SERIES_INSTANCES = "00201209"
TAG_ROWS = "00280010"
TAG_COLUMNS = "00280011"
TAG_FRAMES = "00280008"


def is_dicomweb_url(source: object) -> bool:
    """True for ``dicomweb://`` and ``dicomwebs://`` strings."""
    return isinstance(source, str) and source.split("://", 1)[0].lower() in SCHEMES


def json_value(item: Mapping[str, Any], tag: str) -> Any:
    """The first value of ``tag`` in a DICOM JSON object (None when absent)."""
    values = item.get(tag, {}).get("Value") or [None]
    return values[0]


@dataclass(frozen=True)
class DicomwebAddress:
    """A parsed ``dicomweb://`` URL: the service root and, optionally, a study and series."""

    root: str
    """``http(s)://HOST:PORT/prefix``: where the QIDO, WADO and STOW paths start."""
    study_uid: str | None = None
    series_uid: str | None = None

    @classmethod
    def parse(cls, url: str) -> DicomwebAddress:
        """Read ``dicomweb[s]://HOST:PORT/PREFIX[/studies/UID[/series/UID]]``."""
        from urllib.parse import urlsplit

        scheme, _, rest = url.partition("://")
        if scheme.lower() not in SCHEMES or not rest:
            raise ConfigError(
                f"'{url}' is not a DICOMweb address; write "
                "dicomweb://HOST:PORT/dicom-web/studies/<StudyUID>[/series/<SeriesUID>] "
                "(dicomwebs:// for TLS)."
            )
        parts = urlsplit(f"{SCHEMES[scheme.lower()]}://{rest}")
        if parts.username or parts.password:
            raise ConfigError(
                "Credentials do not belong in a DICOMweb URL (they would land in shell "
                "history and logs). Put them in a file named by MEDLENS_PACS_AUTH_FILE, or "
                "in MEDLENS_PACS_TOKEN / MEDLENS_PACS_USER and MEDLENS_PACS_PASSWORD."
            )
        if not parts.hostname:
            raise ConfigError(f"'{url}' names no host; write dicomweb://HOST:PORT/dicom-web/...")
        if parts.query or parts.fragment:
            raise ConfigError(f"'{url}': a DICOMweb study address takes no '?' or '#' part.")
        match = re.fullmatch(
            r"(?P<prefix>.*?)(?:/studies/(?P<study>[0-9.]+)(?:/series/(?P<series>[0-9.]+))?)?/?",
            parts.path,
        )
        if match is None or "/studies" in (match.group("prefix") or ""):
            raise ConfigError(
                f"'{url}' is not a study address: after the service root write "
                "/studies/<StudyInstanceUID> and optionally /series/<SeriesInstanceUID> "
                "(UIDs are digits and dots)."
            )
        root = f"{parts.scheme}://{parts.netloc}{match.group('prefix')}"
        return cls(root, match.group("study"), match.group("series"))

    def url(self) -> str:
        """The address in ``dicomweb://`` form (for messages and provenance)."""
        scheme, _, rest = self.root.partition("://")
        back = {v: k for k, v in SCHEMES.items()}[scheme]
        path = f"/studies/{self.study_uid}" if self.study_uid else ""
        path += f"/series/{self.series_uid}" if self.series_uid else ""
        return f"{back}://{rest}{path}"


@dataclass(frozen=True)
class Credentials:
    """How to authenticate, and where it came from (for error messages; never the secret)."""

    kind: str
    """"bearer", "basic" or "none"."""
    secret: tuple[str, ...] = ()
    origin: str = ""

    def __repr__(self) -> str:  # keep secrets out of tracebacks and logs
        return f"Credentials(kind={self.kind!r}, origin={self.origin!r})"

    @classmethod
    def resolve(cls, auth_file: str | os.PathLike[str] | None = None) -> Credentials:
        """An explicit ``auth_file``, else the environment (see the module docstring)."""
        path = auth_file or config.env("MEDLENS_PACS_AUTH_FILE")
        if path:
            return cls.from_file(Path(path))
        token = config.env("MEDLENS_PACS_TOKEN")
        if token:
            return cls("bearer", (token,), "MEDLENS_PACS_TOKEN")
        user = config.env("MEDLENS_PACS_USER")
        if user:
            password = config.env("MEDLENS_PACS_PASSWORD") or ""
            return cls("basic", (user, password), "MEDLENS_PACS_USER/MEDLENS_PACS_PASSWORD")
        return cls("none")

    @classmethod
    def from_file(cls, path: Path) -> Credentials:
        try:
            lines = [ln.strip() for ln in path.expanduser().read_text().splitlines()]
        except OSError as exc:
            raise ConfigError(
                f"Cannot read the PACS credentials file '{path}' ({exc.strerror}). Check "
                "MEDLENS_PACS_AUTH_FILE or --auth-file."
            ) from None
        first = next((ln for ln in lines if ln and not ln.startswith("#")), "")
        scheme, _, value = first.partition(" ")
        value = value.strip()
        origin = f"the credentials file '{path.name}'"
        if scheme.lower() == "bearer" and value:
            return cls("bearer", (value,), origin)
        if scheme.lower() == "basic" and ":" in value:
            user, _, password = value.partition(":")
            return cls("basic", (user, password), origin)
        raise ConfigError(
            f"The PACS credentials file '{path}' must start with 'Bearer <token>' or "
            "'Basic <user>:<password>' (one line)."
        )


def _timeout() -> tuple[float, float]:
    text = config.env("MEDLENS_PACS_TIMEOUT")
    if text is None:
        return CONNECT_TIMEOUT_S, DEFAULT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"MEDLENS_PACS_TIMEOUT={text!r} is not a number of seconds.") from None
    return min(CONNECT_TIMEOUT_S, value), value


def _retries() -> int:
    text = config.env("MEDLENS_PACS_RETRIES")
    if text is None:
        return DEFAULT_RETRIES
    if not text.isdigit():
        raise ConfigError(f"MEDLENS_PACS_RETRIES={text!r} is not a whole number.")
    return int(text)


class PacsClient:
    """A ``dicomweb_client.DICOMwebClient`` whose failures are ``PacsError`` s that say what
    to do, with timeouts and retries on a ``requests`` session.

    Retries (urllib3 ``Retry``) cover connection failures and 429/502/503/504 for every
    method (a refused connection sent nothing, and STOW of the same SOP Instance UIDs is
    idempotent), with exponential back-off; dicomweb-client's own retry loop is turned off so
    that a request is not retried twice over.
    """

    def __init__(
        self,
        root: str,
        *,
        credentials: Credentials | None = None,
        timeout: float | tuple[float, float] | None = None,
        retries: int | None = None,
    ) -> None:
        require("dicomweb_client", "pacs", "Talking to a PACS over DICOMweb")
        import requests
        from dicomweb_client.api import DICOMwebClient
        from urllib3.util.retry import Retry

        self.root = root
        self.credentials = credentials or Credentials.resolve()
        if timeout is None:
            self.timeout = _timeout()
        elif isinstance(timeout, tuple):
            self.timeout = timeout
        else:
            self.timeout = (min(CONNECT_TIMEOUT_S, timeout), timeout)
        session = requests.Session()
        policy = Retry(
            total=_retries() if retries is None else retries,
            backoff_factor=0.5,
            status_forcelist=(429, 502, 503, 504),
            allowed_methods=None,
            raise_on_status=False,
            respect_retry_after_header=True,
        )
        adapter = _wildcard_adapter_class()(max_retries=policy)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        if self.credentials.kind == "bearer":
            session.headers["Authorization"] = f"Bearer {self.credentials.secret[0]}"
        elif self.credentials.kind == "basic":
            user, password = self.credentials.secret
            session.auth = (user, password)
        self.session = session
        self.client = DICOMwebClient(root, session=session, timeout=self.timeout)
        self.client.set_http_retry_params(retry=False)

    def close(self) -> None:
        self.session.close()

    # -- error translation ------------------------------------------------------------------

    def call(
        self, what: str, fn: Callable[..., T], *, missing: str | None = None, **kwargs: Any
    ) -> T:
        """Run one dicomweb-client call; transport and HTTP failures become ``PacsError``
        (``missing`` is the message for a 404)."""
        try:
            return fn(**kwargs)
        except Exception as exc:  # translated below; anything else propagates unchanged
            raise self.translate(what, exc, missing=missing) from exc

    def translate(self, what: str, exc: Exception, *, missing: str | None = None) -> Exception:
        """The ``PacsError`` for a ``requests`` failure (other exceptions are returned as
        they are, to be re-raised)."""
        import requests

        where = f"the DICOMweb server at {self.root}"
        if isinstance(exc, requests.exceptions.SSLError):
            return PacsUnavailableError(
                f"{what}: the TLS handshake with {where} failed ({type(exc).__name__}). If "
                "the server uses a private CA, point REQUESTS_CA_BUNDLE at its certificate."
            )
        if isinstance(exc, requests.exceptions.Timeout):
            return PacsUnavailableError(
                f"{what}: {where} did not answer within {self.timeout[1]:g} s. Check the "
                "server's load, or raise MEDLENS_PACS_TIMEOUT."
            )
        if isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.RetryError)):
            return PacsUnavailableError(
                f"{what}: cannot reach {where} (connection refused or host unknown, after "
                "retries). Check the host and port, that the server runs, and that its "
                "DICOMweb plug-in is enabled under that path."
            )
        if isinstance(exc, requests.exceptions.HTTPError) and exc.response is not None:
            if exc.response.status_code == 404 and missing:
                return PacsError(f"{what}: {missing}")
            return self._http_error(what, exc.response)
        return exc

    def _http_error(self, what: str, response: Any) -> PacsError:
        status = int(response.status_code)
        where = f"the DICOMweb server at {self.root}"
        if status in (401, 403):
            sent = (
                "no credentials were sent"
                if self.credentials.kind == "none"
                else f"the {self.credentials.kind} credentials from {self.credentials.origin} "
                "were refused"
            )
            return PacsUnavailableError(
                f"{what}: {where} answered {status} ({'unauthorized' if status == 401 else 'forbidden'}"
                f"): {sent}. Set MEDLENS_PACS_AUTH_FILE (a file holding 'Bearer <token>' or "
                "'Basic <user>:<password>'), MEDLENS_PACS_TOKEN, or MEDLENS_PACS_USER and "
                "MEDLENS_PACS_PASSWORD."
            )
        if status == 404:
            return PacsError(
                f"{what}: {where} answered 404 (not found). Check the UIDs with "
                "'medlens pacs search', and that the service root ends where /studies starts."
            )
        failed = PacsUnavailableError if status >= 500 else PacsError  # 5xx: the server's fault
        return failed(
            f"{what}: {where} answered {status} {response.reason or ''}".rstrip()
            + ". The server refused the request; its log says why."
        )

    # -- QIDO-RS ----------------------------------------------------------------------------

    def search_studies(
        self, filters: Mapping[str, str], *, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """QIDO-RS studies matching ``filters`` (DICOM keywords → values, as PS3.18 10.6)."""
        return self.call(
            "Searching studies",
            self.client.search_for_studies,
            search_filters=dict(filters),
            limit=limit,
            fields=["StudyDescription", "ModalitiesInStudy", "NumberOfStudyRelatedInstances"],
        )

    def search_series(
        self, study_uid: str, filters: Mapping[str, str] | None = None
    ) -> list[dict[str, Any]]:
        return self.call(
            f"Searching the series of study {study_uid}",
            self.client.search_for_series,
            study_instance_uid=study_uid,
            search_filters=dict(filters or {}),
            fields=["SeriesDescription", "NumberOfSeriesRelatedInstances"],
        )

    def search_instances(
        self, study_uid: str, series_uid: str | None = None
    ) -> list[dict[str, Any]]:
        return self.call(
            f"Searching the instances of study {study_uid}",
            self.client.search_for_instances,
            study_instance_uid=study_uid,
            series_instance_uid=series_uid,
        )

    # -- WADO-RS ----------------------------------------------------------------------------

    def iter_series(
        self, study_uid: str, series_uid: str, *, total: int, progress: bool | None = None
    ) -> Iterator[Dataset]:
        """Stream a series' instances as stored (any transfer syntax: the local decoders
        handle compressed pixels), with a progress bar on a terminal."""
        from tqdm import tqdm

        show = sys.stderr.isatty() if progress is None else progress
        what = f"Pulling series {series_uid}"
        stream = self.call(
            what,
            self.client.iter_series,
            study_instance_uid=study_uid,
            series_instance_uid=series_uid,
            media_types=(("application/dicom", "*"),),
        )
        with tqdm(total=total, desc="pull", unit="instance", disable=not show) as bar:
            try:
                for ds in stream:
                    bar.update(1)
                    yield ds
            except Exception as exc:
                raise self.translate(what, exc) from exc

    # -- STOW-RS ----------------------------------------------------------------------------

    def store(self, datasets: Sequence[Dataset]) -> Dataset:
        """STOW-RS ``datasets``; returns the server's response dataset (PS3.18 10.5.3)."""
        return self.call("Storing to the PACS", self.client.store_instances, datasets=datasets)


@functools.cache
def _wildcard_adapter_class() -> Any:
    from requests.adapters import HTTPAdapter

    class WildcardAdapter(HTTPAdapter):
        """Sends QIDO-RS wildcards ``*`` and ``?`` (PS3.18 8.3.4.6.2) unescaped in the query:
        RFC 3986 allows both there, and Orthanc (1.10) matches ``%2A`` literally, so the
        percent-encoding dicomweb-client applies finds nothing. Servers that decode the query
        see the same value either way."""

        def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
            url = str(request.url)
            if "?" in url:
                path, _, query = url.partition("?")
                query = query.replace("%2A", "*").replace("%2a", "*")
                request.url = f"{path}?{query.replace('%3F', '?').replace('%3f', '?')}"
            return super().send(request, *args, **kwargs)

    return WildcardAdapter


def connect(
    address: str | DicomwebAddress,
    *,
    auth_file: str | os.PathLike[str] | None = None,
    timeout: float | None = None,
    retries: int | None = None,
) -> tuple[PacsClient, DicomwebAddress]:
    """A client for the service root of ``address`` (a ``dicomweb://`` URL or parsed)."""
    parsed = address if isinstance(address, DicomwebAddress) else DicomwebAddress.parse(address)
    client = PacsClient(
        parsed.root,
        credentials=Credentials.resolve(auth_file),
        timeout=timeout,
        retries=retries,
    )
    return client, parsed


def image_series_of(client: PacsClient, study_uid: str) -> str:
    """The one image series of a study (SR/SEG/KO/PR series are not images)."""
    series = client.search_series(study_uid)
    if not series:
        raise PacsError(
            f"The DICOMweb server at {client.root} holds no study {study_uid} (QIDO-RS found "
            "no series). Check the UID with 'medlens pacs search'."
        )
    images = [s for s in series if str(json_value(s, TAG_MODALITY)) not in NON_IMAGE_MODALITIES]
    if len(images) == 1:
        return str(json_value(images[0], TAG_SERIES_UID))
    listing = "; ".join(
        f"{json_value(s, TAG_SERIES_UID)} ({json_value(s, TAG_MODALITY)}, "
        f"{json_value(s, TAG_SERIES_INSTANCES) or '?'} instances"
        + (
            f", {json_value(s, TAG_SERIES_DESCRIPTION)}"
            if json_value(s, TAG_SERIES_DESCRIPTION)
            else ""
        )
        + ")"
        for s in series
    )
    if not images:
        raise NoPixelDataError(
            f"Study {study_uid} holds no image series, only: {listing}. Open the study the "
            "reports or segmentations refer to."
        )
    raise ConfigError(
        f"Study {study_uid} holds {len(images)} image series: {listing}. Pick one by adding "
        "/series/<SeriesInstanceUID> to the address."
    )


def pull_series(
    client: PacsClient,
    study_uid: str,
    series_uid: str,
    *,
    max_pixels: int | None = None,
    progress: bool | None = None,
) -> list[Dataset]:
    """Every instance of one series, after checking (no pixels moved) that it holds images
    and, with ``max_pixels``, that they fit the cap.

    The check reads the series' QIDO-RS row (instance count) and the WADO-RS metadata of one
    instance (size, frames, SOP class): two small requests, where the whole series'
    metadata would cost a PACS as much as the pixels (Orthanc reads every file for it).
    Instances of another size are still caught after the pull, by the series assembly.
    """
    from medlens.study.readers.dicom import NON_IMAGE_SOP_PREFIXES, RT_DOSE

    rows = client.search_series(study_uid, {"SeriesInstanceUID": series_uid})
    sample = client.call(
        f"Searching the instances of series {series_uid}",
        client.client.search_for_instances,
        study_instance_uid=study_uid,
        series_instance_uid=series_uid,
        limit=1,
    )
    if not rows or not sample:
        raise PacsError(
            f"The DICOMweb server at {client.root} holds no series {series_uid} in study "
            f"{study_uid}. List the study's series with 'medlens pacs search "
            f"{DicomwebAddress(client.root, study_uid).url()}'."
        )
    count = int(json_value(rows[0], TAG_SERIES_INSTANCES) or 0) or 1
    sop_uid = str(json_value(sample[0], TAG_SOP_INSTANCE))
    meta: dict[str, Any] = client.call(
        f"Reading the metadata of series {series_uid}",
        client.client.retrieve_instance_metadata,
        study_instance_uid=study_uid,
        series_instance_uid=series_uid,
        sop_instance_uid=sop_uid,
    )
    sop = str(json_value(meta, TAG_SOP_CLASS) or json_value(sample[0], TAG_SOP_CLASS) or "")
    is_image = sop == RT_DOSE or (
        json_value(meta, TAG_ROWS) is not None and not sop.startswith(NON_IMAGE_SOP_PREFIXES)
    )
    modality = str(json_value(rows[0], TAG_MODALITY) or "")
    if not is_image or modality in NON_IMAGE_MODALITIES:
        from pydicom.uid import UID

        raise NoPixelDataError(
            f"Series {series_uid} holds no pixel data: its {count} instance(s) are "
            f"{UID(sop).name or 'not images'} ({modality or '?'}). Open the image series they "
            "refer to instead."
        )
    if max_pixels is not None:
        pixels = (
            count
            * int(json_value(meta, TAG_ROWS) or 0)
            * int(json_value(meta, TAG_COLUMNS) or 0)
            * int(json_value(meta, TAG_FRAMES) or 1)
        )
        check_pixel_count(pixels, max_pixels, f"Series {series_uid}")
    return list(client.iter_series(study_uid, series_uid, total=count, progress=progress))


def read_dicomweb(
    url: str,
    *,
    max_pixels: int,
    series_uid: str | None = None,
    volume: int = 0,
    auth_file: str | os.PathLike[str] | None = None,
    timeout: float | None = None,
    retries: int | None = None,
    progress: bool | None = None,
) -> Study:
    """Pull one image series named by a ``dicomweb://`` URL and read it as a ``Study``
    (``source_format`` "dicom-series", or "dicom" for one multi-frame instance, exactly as
    the same files on disk; ``metadata["dicomweb"]`` names the service root, never a UID)."""
    import dataclasses

    from medlens.study.readers.dicom import read_datasets

    client, address = connect(url, auth_file=auth_file, timeout=timeout, retries=retries)
    with contextlib.closing(client):
        if address.study_uid is None:
            raise ConfigError(
                f"'{url}' names a DICOMweb server but no study; add /studies/<StudyUID> "
                "(find it with 'medlens pacs search')."
            )
        chosen = series_uid or address.series_uid or image_series_of(client, address.study_uid)
        datasets = pull_series(
            client, address.study_uid, chosen, max_pixels=max_pixels, progress=progress
        )
    study = read_datasets(datasets, max_pixels=max_pixels, volume=volume, where=f"Series {chosen}")
    return dataclasses.replace(study, metadata={**study.metadata, "dicomweb": address.root})
