"""`make run`: serve the bundled demo graph with its models on loopback.

The demo models are small Python functions served over HTTP by the engine's own
server on loopback ports, so the router runs exactly as in production: compiled
plan, pooled HTTP backends, Switch conditions on raw bytes.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
from pathlib import Path

import orjson
import uvloop

from . import _core, load
from .compiler import Policy
from .server.runner import ServeOptions, listening_socket, serve_in_loop

DEMO_GRAPH = Path(__file__).resolve().parent.parent / "examples" / "demo.yaml"
SAMPLE = {"instances": [{"kind": "image", "pixels": [0.9, 0.7, 0.8, 0.6]}]}


def animal_classifier(doc):
    pixels = doc["instances"][0].get("pixels", [])
    brightness = sum(pixels) / max(len(pixels), 1)
    label = "dog" if brightness > 0.5 else "cat"
    return {"predictions": [{"label": label, "score": round(brightness, 3)}]}


def text_classifier(doc):
    text = doc["instances"][0].get("text", "")
    return {"predictions": [{"label": "dog" if "woof" in text else "cat", "score": 1.0}]}


def expert(breed: str, bias: float):
    def model(doc):
        score = doc["predictions"][0]["score"]
        return {"predictions": [{"breed": breed, "score": round(min(1.0, score * bias), 3)}]}
    return model


DEMO_MODELS = {
    "animal-classifier": animal_classifier,
    "text-classifier": text_classifier,
    "beagle-expert": expert("beagle", 0.9),
    "poodle-expert": expert("poodle", 1.1),
}


def model_handler(fn):
    """HttpServer handler answering fn(JSON body) as JSON."""
    def handle(request):
        try:
            answer = fn(orjson.loads(request.body))
        except Exception as e:  # a broken demo input is the client's problem
            return _core.HttpResponse(400, orjson.dumps({"error": str(e)}),
                                      [(b"Content-Type", b"application/json")])
        return _core.HttpResponse(200, orjson.dumps(answer), [(b"Content-Type", b"application/json")])
    return handle


async def start_models(host="127.0.0.1"):
    """Serve every demo model on its own loopback port; returns (services, servers)."""
    loop = asyncio.get_running_loop()
    services, servers = {}, []
    for name, fn in DEMO_MODELS.items():
        http = _core.HttpServer(model_handler(fn))
        server = await loop.create_server(http.protocol_factory, host, 0)
        port = server.sockets[0].getsockname()[1]
        services[name] = f"http://{host}:{port}/v1/models/{name}:predict"
        servers.append((server, http))
    return services, servers


def free_port_or(port: int, host: str) -> int:
    with socket.socket() as s:
        try:
            s.bind((host, port))
            return port
        except OSError:
            s.bind((host, 0))
            return s.getsockname()[1]


async def main_async(port: int, once: bool) -> int:
    services, servers = await start_models()
    graph = load(DEMO_GRAPH, services=services)
    host = "127.0.0.1"
    port = free_port_or(port, host)
    options = ServeOptions(host=host, http_port=port, drain_seconds=0, policy=Policy())
    sock = listening_socket(host, port, False)
    started = asyncio.get_running_loop().create_future()
    serving = asyncio.ensure_future(serve_in_loop(graph, options, sock=sock, ready=started.set_result))
    instance = await started
    url = f"http://{host}:{port}/v1/models/{graph.name}:predict"
    print(f"Serving InferenceGraph {graph.name!r} at {url}")
    print("Try:")
    print(f"  curl -s -H 'Content-Type: application/json' -d '{json.dumps(SAMPLE)}' {url}")
    client = _core.HttpClient()
    try:
        response = await client.request(_core.Endpoint(url), orjson.dumps(SAMPLE))
        print(f"Sample request -> {response.status} {bytes(response.body).decode()}")
    finally:
        await client.close()
    if once:
        instance.request_stop()
    else:
        print("Press Ctrl-C to stop.")
    await serving
    for server, http in servers:
        server.close()
        await http.drain(1.0)
    return 0 if response.status == 200 else 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.demo", description=__doc__)
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--once", action="store_true", help="send the sample request, then stop")
    args = parser.parse_args(argv)
    return uvloop.run(main_async(args.port, args.once))


if __name__ == "__main__":
    sys.exit(main())
