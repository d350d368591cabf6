"""Any OpenAI-compatible chat server: vLLM, SGLang, Ollama, ``transformers serve``, OpenAI.

It speaks ``POST /v1/chat/completions`` as the OpenAI API reference defines it: images go as
base64 PNG data URLs in ``image_url`` parts, token log-probabilities come back in
``choices[].logprobs.content[]``. Retries follow the official ``openai-python`` client:
exponential back-off with jitter on 408/429/5xx and connection errors, honouring the
server's ``retry-after-ms`` / ``Retry-After`` headers.

This backend is *remote*: it refuses requests that were not de-identified (DESIGN.md,
"nothing a study carried as PHI is ... sent to a remote backend unless de-identification is
explicitly turned off"), unless built with ``allow_identified=True``.
"""

from __future__ import annotations

import base64
import email.utils
import io
import math
import random
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from medlens.config import env
from medlens.errors import BackendError, ConfigError, PrivacyError, require
from medlens.types import Generation, ImagePart, Message, Request, Timings, TokenLogprob

if TYPE_CHECKING:
    import httpx
    from PIL import Image

DEFAULT_BASE_URL = "https://api.openai.com/v1"
MAX_TOP_LOGPROBS = 20
"""The OpenAI API accepts 0-20 alternatives per position."""
_RETRY_STATUS = frozenset({408, 409, 429})
_PNG_MODES = frozenset({"L", "LA", "RGB", "RGBA"})


class OpenAIBackend:
    """A model served over HTTP with the OpenAI chat-completions API.

    ``model`` is the served model name (``base_url`` or ``MEDLENS_OPENAI_BASE_URL`` /
    ``OPENAI_BASE_URL`` say where), or the server URL itself (``"http://gpu:8000/v1"``), in
    which case ``served_model`` names the model or, when absent, the server's first listed
    model (``GET /v1/models``, vLLM serves one) is used. The key comes from ``api_key``,
    ``MEDLENS_OPENAI_API_KEY`` or ``OPENAI_API_KEY``; none is sent when there is none.

    A request that fails alone (timeouts and 5xx after ``max_retries`` retries, a 4xx other
    than 401/403) gives ``Generation(finish_reason="error")``; a rejected key raises
    ``BackendError`` for the whole batch.
    """

    name: ClassVar[str] = "openai"
    remote: ClassVar[bool] = True
    supports_scoring: ClassVar[bool] = False
    view_size: int | None = None

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        served_model: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        max_retries: int = 3,
        concurrency: int = 8,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
        allow_identified: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        require("httpx", "openai", "The OpenAI-compatible backend")
        import httpx

        if timeout_s <= 0 or max_retries < 0 or concurrency < 1 or backoff_s < 0:
            raise ConfigError(
                "OpenAI backend options out of range: timeout_s and concurrency must be "
                "positive, max_retries and backoff_s zero or more."
            )
        if model.startswith(("http://", "https://")):
            if base_url is not None:
                raise ConfigError("Give the server URL either as the model or as base_url.")
            base_url, model_name = model, served_model
        else:
            model_name = served_model or model
        root = _api_root(
            base_url or env("MEDLENS_OPENAI_BASE_URL") or env("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        )
        key = api_key or env("MEDLENS_OPENAI_API_KEY") or env("OPENAI_API_KEY")
        all_headers = dict(headers or {})
        if key:
            all_headers["Authorization"] = f"Bearer {key}"
        self.base_url = root
        self.timeout_s = float(timeout_s)
        self.max_retries = int(max_retries)
        self.concurrency = int(concurrency)
        self.backoff_s = float(backoff_s)
        self.max_backoff_s = float(max_backoff_s)
        self.allow_identified = allow_identified
        self._jitter = random.Random()
        self._client: httpx.Client = httpx.Client(
            base_url=root,
            timeout=self.timeout_s,
            headers=all_headers,
            limits=httpx.Limits(
                max_connections=self.concurrency, max_keepalive_connections=self.concurrency
            ),
        )
        self.model_id = model_name or self._served_model()

    # --------------------------------------------------------------------------------------

    def generate(self, requests: Sequence[Request]) -> list[Generation]:
        """Send the requests, at most ``concurrency`` at a time; results keep their order."""
        self._check_privacy(requests)
        if not requests:
            return []
        started = time.perf_counter()
        workers = min(self.concurrency, len(requests))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="medlens-openai") as pool:
            futures: list[Future[Generation]] = [
                pool.submit(self._one, request, started) for request in requests
            ]
            try:
                return [future.result() for future in futures]
            except BackendError:
                for future in futures:
                    future.cancel()
                raise

    def close(self) -> None:
        self._client.close()

    # --------------------------------------------------------------------------------------

    def _check_privacy(self, requests: Sequence[Request]) -> None:
        if self.allow_identified:
            return
        count = sum(1 for r in requests if not r.deidentified)
        if count:
            host = urlsplit(self.base_url).netloc
            raise PrivacyError(
                f"{count} of {len(requests)} request(s) are not de-identified and the openai "
                f"backend would send them to {host}. De-identify first or pass --no-deid "
                "explicitly (OpenAIBackend(..., allow_identified=True))."
            )

    def _served_model(self) -> str:
        return self.models()[0]

    def models(self, timeout_s: float | None = None) -> list[str]:
        """The model names the server lists (``GET /v1/models``), within ``timeout_s``
        (default: the backend's); ``BackendError`` when it cannot be reached or lists none.
        It is also the health check of ``medlens.backends.pool``."""
        import httpx

        url = f"{self.base_url}/models"
        try:
            response = self._client.get("/models", timeout=timeout_s or self.timeout_s)
        except httpx.HTTPError as exc:
            raise BackendError(
                f"Could not reach {url} to find the served model ({type(exc).__name__}). "
                "Check the server is up, or name the model with served_model=."
            ) from exc
        self._raise_for_auth(response)
        try:
            models = [str(m["id"]) for m in response.json()["data"]]
        except (ValueError, KeyError, TypeError):
            models = []
        if not models:
            raise BackendError(
                f"{url} answered HTTP {response.status_code} without a model list; name the "
                "model with served_model=."
            )
        return models

    def _raise_for_auth(self, response: httpx.Response) -> None:
        if response.status_code in (401, 403):
            raise BackendError(
                f"The server at {self.base_url} rejected the request (HTTP "
                f"{response.status_code}: {_error_message(response)}). Set the API key with "
                "MEDLENS_OPENAI_API_KEY (or OPENAI_API_KEY) or pass api_key=."
            )

    def _one(self, request: Request, started: float) -> Generation:
        import httpx

        begin = time.perf_counter()
        body = self.request_body(request)
        sent = time.perf_counter()
        error = ""
        for attempt in range(self.max_retries + 1):
            retry_after: float | None = None
            try:
                response = self._client.post("/chat/completions", json=body)
            except httpx.TimeoutException:
                error = f"timed out after {self.timeout_s:g} s"
            except httpx.TransportError as exc:
                error = f"connection failed ({type(exc).__name__})"
            else:
                self._raise_for_auth(response)
                status = response.status_code
                if status < 400:
                    timings = Timings(
                        queue_s=begin - started,
                        preprocess_s=sent - begin,
                        total_s=time.perf_counter() - begin,
                    )
                    return self._generation(request, response, timings)
                error = f"HTTP {status}: {_error_message(response)}"
                if status not in _RETRY_STATUS and status < 500:
                    break
                retry_after = _retry_after(response.headers)
            if attempt < self.max_retries:
                time.sleep(self._delay(attempt, retry_after))
        attempts = attempt + 1
        return Generation.failed(
            request.id,
            self.model_id,
            self.name,
            f"{error} (after {attempts} attempt{'s' if attempts > 1 else ''})",
            Timings(queue_s=begin - started, total_s=time.perf_counter() - begin),
        )

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None and 0 <= retry_after <= max(60.0, self.max_backoff_s):
            return retry_after
        delay = min(self.max_backoff_s, self.backoff_s * 2.0**attempt)
        return delay * (1.0 - 0.25 * self._jitter.random())

    # --------------------------------------------------------------------------------------

    def request_body(self, request: Request) -> dict[str, Any]:
        """The JSON body of ``POST /chat/completions`` for one request."""
        opts = request.options
        body: dict[str, Any] = {
            "model": self.model_id,
            "messages": [_message(m) for m in request.messages],
            "max_tokens": opts.max_new_tokens,
            "temperature": opts.temperature,
            "top_p": opts.top_p,
            "n": opts.num_samples,
        }
        if opts.seed is not None:
            body["seed"] = opts.seed
        if opts.stop:
            body["stop"] = list(opts.stop)
        if opts.logprobs:
            # Candidate probabilities are read from the first token's alternatives: ask for
            # as many as the API allows when there are candidates to find among them.
            wanted = MAX_TOP_LOGPROBS if request.candidates else opts.top_logprobs
            body["logprobs"] = True
            body["top_logprobs"] = max(0, min(MAX_TOP_LOGPROBS, wanted))
        return body

    def _generation(
        self, request: Request, response: httpx.Response, timings: Timings
    ) -> Generation:
        def failed(why: str) -> Generation:
            return Generation.failed(
                request.id,
                self.model_id,
                self.name,
                f"HTTP {response.status_code} with {why}",
                timings,
            )

        try:
            data = response.json()
        except ValueError:
            return failed("a body that is not JSON")
        choices = data.get("choices") if isinstance(data, dict) else None
        if (
            not isinstance(choices, list)
            or not choices
            or not all(isinstance(c, dict) for c in choices)
        ):
            return failed("no choices in the response")
        choices = sorted(
            choices, key=lambda c: c.get("index", 0) if isinstance(c.get("index"), int) else 0
        )
        texts = [_content(c.get("message")) for c in choices]
        tokens = _tokens(choices[0].get("logprobs"))
        usage = data.get("usage")
        prompt_tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
        return Generation(
            request_id=request.id,
            text=texts[0],
            model=str(data.get("model") or self.model_id),
            backend=self.name,
            tokens=tokens,
            candidate_logprobs=candidate_logprobs(tokens[0], request) if tokens else {},
            samples=tuple(texts[1:]),
            finish_reason=str(choices[0].get("finish_reason") or "stop"),
            timings=timings,
            prompt_tokens=prompt_tokens if isinstance(prompt_tokens, int) else 0,
        )


# ------------------------------------------------------------------------------------------
# Wire format
# ------------------------------------------------------------------------------------------


def _api_root(url: str) -> str:
    """``http://host:8000`` and ``http://host:8000/v1/`` both mean ``http://host:8000/v1``."""
    url = url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"The server URL must start with http:// or https://, got {url!r}.")
    return url if url.endswith("/v1") else f"{url}/v1"


def image_data_url(image: Image.Image) -> str:
    """A ``data:image/png;base64,...`` URL; modes PNG readers disagree on become RGB."""
    if image.mode not in _PNG_MODES:
        image = image.convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _message(message: Message) -> dict[str, Any]:
    if message.role == "system":
        text = "\n".join(p.text for p in message.content if not isinstance(p, ImagePart))
        return {"role": "system", "content": text}
    parts: list[dict[str, Any]] = []
    for part in message.content:
        if isinstance(part, ImagePart):
            parts.append({"type": "image_url", "image_url": {"url": image_data_url(part.image)}})
        else:
            parts.append({"type": "text", "text": part.text})
    return {"role": message.role, "content": parts}


def _content(message: object) -> str:
    """``message.content`` as text: a string, ``null`` or a list of text parts."""
    if not isinstance(message, dict):
        return ""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(p.get("text", ""))
            for p in content
            if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


def _tokens(logprobs: object) -> tuple[TokenLogprob, ...]:
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    if not isinstance(content, list):
        return ()
    out = []
    for item in content:
        if not isinstance(item, dict) or not _is_number(item.get("logprob")):
            continue
        top = tuple(
            (str(alt.get("token", "")), float(alt["logprob"]))
            for alt in item.get("top_logprobs") or ()
            if isinstance(alt, dict) and _is_number(alt.get("logprob"))
        )
        out.append(TokenLogprob(str(item.get("token", "")), float(item["logprob"]), top))
    return tuple(out)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def candidate_logprobs(first: TokenLogprob, request: Request) -> dict[str, float]:
    """Each candidate's log-probability from the first generated token's alternatives.

    A candidate collects every alternative that can start it ("Yes", " yes", "Y" for "yes";
    the option letter for multiple choice, since the prompt asks for the letter), summed in
    probability space; an alternative that could start several candidates counts for none.
    Candidates absent from the alternatives are absent from the result.
    """
    if not request.candidates:
        return {}
    if request.kind == "choice":
        labels = [chr(ord("a") + i) for i in range(len(request.candidates))]
    else:
        labels = [c.strip().lower() for c in request.candidates]
    alternatives = dict(first.top)
    alternatives.setdefault(first.token, first.logprob)
    found: dict[int, list[float]] = {}
    for token, logprob in alternatives.items():
        piece = token.replace("Ġ", " ").replace("▁", " ").strip().lower()
        if request.kind == "choice":
            piece = piece.strip("().:")
            matches = [i for i, label in enumerate(labels) if piece == label]
        else:
            matches = [i for i, label in enumerate(labels) if piece and label.startswith(piece)]
        if len(matches) == 1:
            found.setdefault(matches[0], []).append(logprob)
    return {request.candidates[i]: _logsumexp(values) for i, values in found.items()}


def _logsumexp(values: list[float]) -> float:
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


def _error_message(response: httpx.Response) -> str:
    """The server's error message (OpenAI error JSON or plain text), shortened."""
    try:
        data = response.json()
    except ValueError:
        return response.text.strip()[:200] or response.reason_phrase
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])[:200]
    if isinstance(error, str):
        return error[:200]
    detail = data.get("detail") if isinstance(data, dict) else None
    return str(detail)[:200] if detail else response.reason_phrase


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms`` (OpenAI) or ``Retry-After`` (RFC 9110 10.2.3:
    seconds or an HTTP date)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    if "retry-after-ms" in lowered:
        try:
            return float(lowered["retry-after-ms"]) / 1000.0
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())
