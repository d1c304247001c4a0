"""The served model on onnxruntime: the pyfunc's ``/invocations`` protocol without torch or MLflow.

``glcf serve --backend onnx`` runs ``python -m pipelines.serving.onnx_server`` with the version's
exported file. Requests and answers are those of ``pipelines/serving/model_code.py`` behind MLflow's
scoring server (``dataframe_split``, ``dataframe_records`` or ``inputs`` JSON, optional ``params``;
``{"predictions": [...]}`` back; a malformed request gets HTTP 400 with ``error_code`` and
``message``, a content type other than JSON 415), and ``/ping``, ``/health`` and ``/version``
answer as there. Only numpy, Pillow and onnxruntime are imported, so it answers within seconds.
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from glcf.export.run import ExportedDetector
from glcf.serving.requests import DEFAULT_LIMITS, BadRequestError, answer_rows, decode_images, map_params

logger = logging.getLogger("glcf.serving.requests")

FORMATS = ("dataframe_split", "dataframe_records", "inputs", "instances")
CONTENT_TYPES = ["text/csv", "application/json", "application/vnd.apache.parquet"]


class InvalidInputError(ValueError):
    """A request body that is not one of the accepted JSON shapes (MLflow's ``BAD_REQUEST``)."""


def image_column(body: Any) -> list[Any]:
    """The ``image`` values of a request in any of the scoring server's JSON shapes."""
    if not isinstance(body, dict):
        msg = f"The input must be a JSON dictionary with exactly one of the input fields {set(FORMATS)}"
        raise InvalidInputError(msg)
    keys = [k for k in body if k in FORMATS]
    if len(keys) != 1:
        msg = (
            f"The input must be a JSON dictionary with exactly one of the input fields {set(FORMATS)}. "
            f"Received dictionary with input fields: {list(body)}."
        )
        raise InvalidInputError(msg)
    data = body[keys[0]]
    if keys[0] == "dataframe_split" and isinstance(data, dict):
        columns, rows = list(data.get("columns") or []), list(data.get("data") or [])
        if "image" in columns:
            i = columns.index("image")
            return [row[i] if isinstance(row, list) and len(row) > i else None for row in rows]
        found = columns
    elif keys[0] == "dataframe_records" and isinstance(data, list):
        if all(isinstance(r, dict) and "image" in r for r in data):
            return [r["image"] for r in data]
        found = sorted({k for r in data if isinstance(r, dict) for k in r})
    elif isinstance(data, dict) and "image" in data:
        values = data["image"]
        return values if isinstance(values, list) else [values]
    elif isinstance(data, list) and all(isinstance(r, dict) and "image" in r for r in data):
        return [r["image"] for r in data]
    else:
        found = list(data) if isinstance(data, dict) else []
    extra = [c for c in found if c != "image"]
    msg = "Model is missing inputs ['image']." + (f" Note that there were extra inputs: {extra}." if extra else "")
    raise InvalidInputError(msg)


class Server:
    """The detector, its limits and one lock (one graph call at a time, as one MLflow worker)."""

    def __init__(self, detector: ExportedDetector, limits: dict[str, int], version: str | None, category: str) -> None:
        self.detector, self.limits, self.version, self.category = detector, limits, version, category
        self.lock = threading.Lock()

    def invocations(self, body: bytes, content_type: str) -> tuple[int, str, str]:
        """``(status, content type, body)`` of one ``POST /invocations``."""
        mime = content_type.split(";")[0].strip()
        if mime != "application/json":
            text = "This predictor only supports the following content types:"
            text += f" Types: {CONTENT_TYPES}. Got '{content_type}'."
            return 415, "text/plain", text
        try:
            try:
                request = json.loads(body)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                msg = f"Ensure that input is a valid JSON formatted string. Error: '{exc!r}'"
                raise InvalidInputError(msg) from None
            values = image_column(request)
            return_map, map_size = map_params(request.get("params"))
            images = decode_images(values, self.limits)
        except InvalidInputError as exc:
            return 400, "application/json", json.dumps({"error_code": "BAD_REQUEST", "message": str(exc)})
        except BadRequestError as exc:
            return 400, "application/json", json.dumps({"error_code": "INVALID_PARAMETER_VALUE", "message": str(exc)})
        with self.lock:
            detections = self.detector.score(images, return_maps=return_map, map_size=map_size)
        rows = answer_rows(detections, self.version, self.category, return_map)
        return 200, "application/json", json.dumps({"predictions": rows})


def handler(server: Server) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _send(self, status: int, content_type: str, text: str) -> None:
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path in ("/ping", "/health"):
                self._send(200, "application/json", "\n")
            elif self.path == "/version":
                self._send(200, "application/json", json.dumps({"backend": "onnxruntime", "version": server.version}))
            else:
                self._send(404, "application/json", json.dumps({"detail": "Not Found"}))

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            if self.path != "/invocations":
                self._send(404, "application/json", json.dumps({"detail": "Not Found"}))
                return
            self._send(*server.invocations(body, self.headers.get("Content-Type", "")))

        def log_message(self, format: str, *args: Any) -> None:
            logger.info("%s %s", self.address_string(), format % args)

    return Handler


def onnx_serve_command(loaded: Any, name: str, version: str, category: str, host: str, port: int) -> list[str]:
    """This module's command line for a registered version (its ONNX export: cached, logged or made now)."""
    import sys

    from pipelines.export import registered_export

    model = registered_export(name, version, "onnx")
    serve = loaded.serve
    return [
        sys.executable, "-m", "pipelines.serving.onnx_server", "--model", str(model), "--host", host,
        "--port", str(port), "--category", category, "--version", str(version),
        "--max-image-bytes", str(serve.max_image_bytes), "--max-image-pixels", str(serve.max_image_pixels),
        "--max-batch", str(serve.max_batch),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="exported .onnx (or OpenVINO .xml) file")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5001)
    parser.add_argument("--category", default="")
    parser.add_argument("--version", default=None)
    parser.add_argument("--threads", type=int, default=None)
    for key, value in DEFAULT_LIMITS.items():
        parser.add_argument(f"--{key.replace('_', '-')}", type=int, default=value)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    detector = ExportedDetector(args.model, threads=args.threads)
    limits = {key: getattr(args, key) for key in DEFAULT_LIMITS}
    state = Server(detector, limits, args.version or detector.version, args.category or detector.category)
    httpd = ThreadingHTTPServer((args.host, args.port), handler(state))
    logger.info("onnxruntime server on http://%s:%d/invocations (%s)", args.host, args.port, args.model)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()


if __name__ == "__main__":
    main()
