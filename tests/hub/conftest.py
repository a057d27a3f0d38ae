"""A loopback HTTP server for the download tests (127.0.0.1, an ephemeral port) and a tiny checkpoint."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class Server:
    """Serves ``files[path] = bytes``; ``mode[path]`` picks the behaviour:

    * ``"ok"``: honours ``Range: bytes=N-`` with 206 + Content-Range;
    * ``"norange"``: ignores Range, always 200 with the whole file;
    * ``"cut"``: announces the whole length but sends only the first ``cut_at`` bytes, then closes (an
      interrupted transfer); a Range request is honoured the same way (from N up to ``cut_at``).
    """

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.mode: dict[str, str] = {}
        self.cut_at: dict[str, int] = {}
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):  # noqa: N802 (http.server's name)
                rng = self.headers.get("Range")
                server.requests.append((self.path, rng))
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                mode = server.mode.get(self.path, "ok")
                start = 0
                if rng and mode != "norange":
                    start = int(rng.removeprefix("bytes=").rstrip("-"))
                    if start >= len(data):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                end = server.cut_at.get(self.path, len(data)) if mode == "cut" else len(data)
                self.wfile.write(data[start : max(start, end)])

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def add(self, name: str, data: bytes, mode: str = "ok") -> str:
        self.files[f"/{name}"] = data
        self.mode[f"/{name}"] = mode
        return f"{self.url}/{name}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def http_server():
    server = Server()
    yield server
    server.stop()


@pytest.fixture
def facezoo_home(tmp_path, monkeypatch):
    home = tmp_path / "facezoo-home"
    monkeypatch.setenv("FACEZOO_HOME", str(home))
    return home


TINY = dict(
    morphable_model="procedural:600:4:2:8", backbone="resnet18", backbone_kwargs={"width": 8}, image_size=32
)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A Lightning-style Deep3DFace checkpoint (random weights, hyper-parameters with ``_class_path``) and the
    module it was saved from."""
    import torch

    from facezoo.methods import Deep3DFace

    torch.manual_seed(0)
    model = Deep3DFace(**TINY)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))  # not the initialisation: loading must be what restores them
    hp = {"_class_path": "facezoo.methods.Deep3DFace", **dict(model.hparams)}
    path = tmp_path_factory.mktemp("ckpt") / "tiny.ckpt"
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": hp, "global_step": 7,
                "optimizer_states": [{"state": {}, "param_groups": []}]}, path)  # fmt: skip
    return path, model.eval()
