"""GET /graph (engine/server/graph_page.py): the page, its route and switches, and the
page itself rendered in headless Chromium, its figures checked against a /metrics
scrape parsed with prometheus_client and a screenshot decoded.

Chromium comes from Debian (tests/setup.sh, run by `make test`): without it the
rendering tests fail under CI and are skipped elsewhere. It is slow to start, so one
router serves both Chromium runs (the DOM and the screenshot) of this module.
"""
from __future__ import annotations

import asyncio
import json
import math
import os
import re
import shutil
import struct
import subprocess
import threading
import zlib
from html.parser import HTMLParser

import pytest
import uvloop
from prometheus_client.parser import text_string_to_metric_families

import engine
from engine import _core
from engine.server.graph_page import plan_structure, render_graph_page
from routerkit import ModelServer, raw_exchange, running_router, split_response, static

CHROMIUM_SECONDS = 60
# the page's own refresh and Chromium's virtual time: several scrapes, so every rate
# figure is one over an interval
REFRESH = 1
VIRTUAL_MS = 3500
WINDOW = (1280, 900)
REQUESTS = 30


async def get(port, path, method="GET"):
    raw = await raw_exchange(port, f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
                                   f"Connection: close\r\n\r\n".encode())
    return split_response(raw)


def embedded_plan(page: bytes) -> dict:
    text = page.decode()
    start = text.index('<script type="application/json" id="plan">') + len('<script type="application/json" id="plan">')
    return json.loads(text[start:text.index("</script>", start)])


# ---- the route --------------------------------------------------------------------

EVIL = "</script><script>alert(1)</script><!--"


def test_graph_path_answers_the_page_and_a_name_cannot_end_its_script(loop):
    async def go():
        m = await ModelServer(static({"ran": True})).start()
        graph = {"nodes": {"root": {"routerType": "Sequence", "steps": [
                     {"name": "classify", "serviceUrl": m.url}, {"name": "inner", "nodeName": "sub"}]},
                 "sub": {"routerType": "Ensemble", "steps": [{"name": EVIL, "serviceUrl": m.url}]}}}
        try:
            async with running_router(graph) as router:
                page = await get(router.port, "/graph")
                with_query = await get(router.port, "/graph?refresh=2")
                posted = await get(router.port, "/graph", "POST")
                return page, with_query, posted, len(m.requests)
        finally:
            await m.close()
    (status, headers, body), with_query, posted, calls = loop.run(go())
    assert status == 200 and headers[b"content-type"] == b"text/html; charset=utf-8"
    assert with_query[0] == 200 and with_query[2] == body
    assert calls == 2       # only the POST ran the graph (two model calls)
    assert posted[0] == 200 and json.loads(posted[2]) == {EVIL: {"ran": True}}
    text = body.decode()
    for name in ("root", "sub", "classify", "inner", "Sequence", "Ensemble"):
        assert f'"{name}"' in text
    # the page's own two scripts end where they should; the name stays inside the JSON
    assert text.count("</script>") == 2 and text.count("<script") == 2 and "<!--" not in text
    plan = embedded_plan(body)
    assert [s["name"] for s in plan["nodes"][1]["steps"]] == [EVIL]
    # self-contained: nothing to load but the router's own /metrics
    assert not re.search(r'(src|href)\s*=\s*"(?!#|data:)', text) and "@import" not in text
    assert re.findall(r"url\(([^)]*)\)", text) == ["#arrow"]
    assert text.count("fetch(") == 1 and 'fetch("metrics"' in text


def test_graph_path_runs_the_graph_with_kserve_paths_or_without_a_page(loop):
    async def go():
        m = await ModelServer(static({"ran": True})).start()
        graph = {"nodes": {"root": {"routerType": "Sequence", "steps": [{"serviceUrl": m.url}]}}}
        try:
            async with running_router(graph, reserved_paths="kserve") as router:
                kserve = await get(router.port, "/graph")
            async with running_router(graph) as router:
                router.instance.app.graph_page = None
                no_page = await get(router.port, "/graph")
            return kserve, no_page, len(m.requests)
        finally:
            await m.close()
    kserve, no_page, calls = loop.run(go())
    for status, headers, body in (kserve, no_page):
        assert status == 200 and json.loads(body) == {"ran": True}
    assert calls == 2


def test_a_graph_app_has_no_page_until_given_one():
    plan = engine.load({"nodes": {"root": {"routerType": "Sequence", "steps": [
        {"serviceUrl": "http://127.0.0.1:1/v1/models/m:predict"}]}}}).compile()
    app = _core.GraphApp(plan.compiled, plan.propagation)
    assert app.graph_page is None
    app.graph_page = render_graph_page(plan.compiled)
    assert app.graph_page.startswith(b"<!doctype html>")


def test_the_structure_labels_steps_as_metrics_do():
    doc = {"apiVersion": "serving.kserve.io/v1alpha1", "kind": "InferenceGraph",
           "metadata": {"name": "demo"}, "spec": {"nodes": {
        "root": {"routerType": "Splitter", "steps": [
            {"serviceUrl": "http://a:1/v1/models/a:predict", "weight": 30},
            {"name": "b", "nodeName": "pick", "weight": 70}]},
        "pick": {"routerType": "Switch", "steps": [
            {"serviceUrl": "http://c:1/v1/models/c:predict", "condition": "instances.#(>1)", "dependency": "Hard"}]}}}}
    plan = engine.load(doc).compile().compiled
    s = plan_structure(plan)
    assert s["graph"] == "demo" and s["step_metrics"] is True
    root, pick = s["nodes"]
    assert (root["name"], root["router"], pick["router"]) == ("root", "Splitter", "Switch")
    assert [(x["label"], x["weight"]) for x in root["steps"]] == [("0", 30), ("b", 70)]
    assert root["steps"][0]["url"] == "http://a:1/v1/models/a:predict" and root["steps"][1]["node"] == 1
    assert pick["steps"][0]["condition"] == "instances.#(>1)" and pick["steps"][0]["hard"] is True


# ---- the page in Chromium -----------------------------------------------------------

def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        reason = "chromium is not installed (tests/setup.sh installs it)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return path


class RouterThread:
    """The router and its model servers on a loop in a thread, so that the test's
    thread can wait for Chromium: models that fail every third call, one slow one."""

    def __init__(self):
        self.port = 0
        self.text = ""
        self.loop = None
        self.stop = None
        self.ready = threading.Event()
        self.error = None
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        try:
            # uvloop, as ige serve runs it; in a thread it has no signal handlers
            # (ValueError), which serve_in_loop must take in its stride
            uvloop.run(self.serve())
        except BaseException as e:  # reported to the test's thread
            self.error = e
            self.ready.set()

    async def serve(self):
        calls = {"n": 0}

        def flaky(request):
            calls["n"] += 1
            return (500, {"error": "boom"}) if calls["n"] % 3 == 0 else (200, {"predictions": [1]})

        async def slow(request):
            await asyncio.sleep(0.02)   # the model's latency: a p99 apart from the others
            return 200, {"y": 2}
        models = [await ModelServer(a).start() for a in (static({"predictions": [1]}), static({"x": 1}), slow,
                                                        flaky, static({"b": 1}))]
        pre, x, y, post, big = models
        graph = {"nodes": {
            "root": {"routerType": "Sequence", "steps": [
                {"name": "preprocess", "serviceUrl": pre.url},
                {"name": "fanout", "nodeName": "fanout"},
                {"name": "route", "nodeName": "route", "data": "$request"},
                {"name": "postprocess", "serviceUrl": post.url}]},
            "fanout": {"routerType": "Ensemble", "steps": [
                {"name": "x", "serviceUrl": x.url}, {"name": "y", "serviceUrl": y.url}]},
            "route": {"routerType": "Switch", "steps": [
                {"name": "big", "serviceUrl": big.url, "condition": "big"},
                {"serviceUrl": pre.url, "condition": "small", "dependency": "Hard"}]}}}
        try:
            async with running_router(graph) as router:
                for i in range(REQUESTS):
                    await router.post({"instances": [1], ("big" if i % 3 == 0 else "small"): True})
                self.port = router.port
                self.loop = asyncio.get_running_loop()
                self.stop = asyncio.Event()
                self.ready.set()
                await self.stop.wait()
                status, _, body = await get(router.port, "/metrics")
                assert status == 200
                self.text = body.decode()
        finally:
            for m in models:
                await m.close()

    def __enter__(self):
        self.thread.start()
        assert self.ready.wait(30)
        if self.error is not None:
            raise self.error
        return self

    def __exit__(self, *exc):
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(30)
        assert not self.thread.is_alive()
        if self.error is not None and exc[0] is None:
            raise self.error


def run_chromium(binary, tmp, url, *args):
    out = subprocess.run(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         f"--user-data-dir={tmp / 'profile'}", f"--virtual-time-budget={VIRTUAL_MS}", *args, url],
        capture_output=True, timeout=CHROMIUM_SECONDS)
    assert out.returncode == 0, out.stderr.decode(errors="replace")[-2000:]
    return out.stdout


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """(DOM after the page's scrapes, screenshot path, /metrics text scraped after)."""
    binary = chromium()
    tmp = tmp_path_factory.mktemp("graph_page")
    with RouterThread() as router:
        url = f"http://127.0.0.1:{router.port}/graph?refresh={REFRESH}"
        dom = run_chromium(binary, tmp, url, "--dump-dom").decode()
        png = tmp / "graph.png"
        run_chromium(binary, tmp, url, f"--screenshot={png}", f"--window-size={WINDOW[0]},{WINDOW[1]}")
    return dom, png, router.text


class Figures(HTMLParser):
    """Every element with data-field or data-total: (its attributes, its text)."""

    def __init__(self):
        super().__init__()
        self.found: list[tuple[dict, str]] = []
        self.open = None
        self.body = {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "body":
            self.body = a
        if "data-field" in a or "data-total" in a:
            self.open = (a, [])

    def handle_data(self, data):
        if self.open is not None:
            self.open[1].append(data)

    def handle_endtag(self, tag):
        if self.open is not None:
            self.found.append((self.open[0], "".join(self.open[1])))
            self.open = None


def quantile(q, buckets):
    """Prometheus' histogram_quantile over [(le, cumulative count)]."""
    buckets = sorted(buckets)
    total = buckets[-1][1]
    if total == 0:
        return math.nan
    rank = q * total
    i = next(i for i, (_, c) in enumerate(buckets) if c >= rank)
    if i == len(buckets) - 1:
        return buckets[-2][0]
    lower, below = (0.0, 0) if i == 0 else buckets[i - 1]
    return lower + (buckets[i][0] - lower) * (rank - below) / (buckets[i][1] - below)


def expected(text):
    """{(node, step): {requests, p99, errors}} and the graph's totals, from /metrics."""
    steps: dict = {}
    totals = {"buckets": {}}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            L = s.labels
            if L.get("graph") != "graph":
                continue
            if s.name.startswith("ige_step_"):
                st = steps.setdefault((L["node"], L["step"]), {"requests": 0, "errors": 0, "buckets": {}})
            if s.name == "ige_step_duration_seconds_bucket":
                le = float(L["le"])
                st["buckets"][le] = st["buckets"].get(le, 0) + s.value
            elif s.name == "ige_step_duration_seconds_count":
                st["requests"] += s.value
            elif s.name == "ige_step_errors_total":
                st["errors"] += s.value
            elif s.name == "ige_request_duration_seconds_bucket":
                le = float(L["le"])
                totals["buckets"][le] = totals["buckets"].get(le, 0) + s.value
            elif s.name in ("ige_requests_total", "ige_requests_failed_total", "ige_requests_in_flight"):
                totals[s.name] = s.value
    for st in steps.values():
        st["p99"] = quantile(0.99, list(st["buckets"].items()))
        st["errors"] = st["errors"] / st["requests"]
    totals["p99"] = quantile(0.99, list(totals["buckets"].items()))
    return steps, totals


UNITS = {"ms": 1e-3, "s": 1.0, "%": 1e-2, "/s": 1.0, "": 1.0}


def shown(text):
    """(value in the figure's base unit, half a unit of its last digit in that unit)."""
    m = re.fullmatch(r"([0-9][0-9,]*(?:\.([0-9]+))?)\s*(ms|s|%|/s|)", text.strip())
    assert m, text
    scale = UNITS[m.group(3)]
    decimals = len(m.group(2) or "")
    return float(m.group(1).replace(",", "")) * scale, 0.5 * 10 ** -decimals * scale


def check(value_attr, text, want):
    assert math.isclose(float(value_attr), want, rel_tol=1e-9, abs_tol=1e-12), (value_attr, want)
    value, half = shown(text)
    assert abs(value - want) <= half * (1 + 1e-6), (text, want)


def test_every_figure_on_the_page_matches_metrics(rendered):
    dom, _, text = rendered
    steps, totals = expected(text)
    assert totals["ige_requests_total"] == REQUESTS
    parser = Figures()
    parser.feed(dom)
    assert int(parser.body["data-scrapes"]) >= 2
    by_step: dict = {}
    for attrs, shown_text in parser.found:
        if "data-field" in attrs:
            by_step.setdefault((attrs["data-node"], attrs["data-step"]), {})[attrs["data-field"]] = (
                attrs["data-value"], shown_text)
    # every model-call step, none else (node steps have no figures of their own)
    assert set(by_step) == set(steps) == {("root", "preprocess"), ("root", "postprocess"), ("fanout", "x"),
                                          ("fanout", "y"), ("route", "big"), ("route", "1")}
    for key, want in steps.items():
        got = by_step[key]
        assert got["requests"][0] == str(int(want["requests"])), key
        assert int(got["requests"][1].replace(",", "")) == want["requests"]
        check(*got["p99"], want["p99"])
        check(*got["errors"], want["errors"])
        # nothing ran between the page's scrapes
        check(*got["rate"], 0.0)
    assert steps[("route", "big")]["requests"] == 10 and steps[("route", "1")]["requests"] == 20
    assert steps[("root", "postprocess")]["errors"] == pytest.approx(1 / 3)
    assert len({round(s["p99"], 6) for s in steps.values()}) > 1
    figures = {attrs["data-total"]: (attrs["data-value"], t) for attrs, t in parser.found if "data-total" in attrs}
    assert figures["requests"] == (str(REQUESTS), str(REQUESTS))
    assert figures["failed"][0] == str(int(totals["ige_requests_failed_total"])) == "10"
    assert figures["in_flight"][0] == "0"
    check(*figures["p99"], totals["p99"])
    check(*figures["rate"], 0.0)


def png_rows(path):
    """(width, height, rows of unfiltered pixel bytes, bytes per pixel) of an 8-bit
    RGB or RGBA PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, [], None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBB", chunk[:10])
        elif kind == b"IDAT":
            idat.append(chunk)
        pos += 12 + length
    width, height, depth, colour = header
    assert depth == 8 and colour in (2, 6), header
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride = width * bpp
    assert len(raw) == height * (stride + 1)
    rows, prior = [], bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            up, corner = prior[i], prior[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 255
        rows.append(bytes(line))
        prior = line
    return width, height, rows, bpp


def test_the_screenshot_is_a_picture(rendered):
    _, png, _ = rendered
    width, height, rows, bpp = png_rows(png)
    assert (width, height) == WINDOW
    colours = {row[i:i + bpp] for row in rows[::7] for i in range(0, len(row), bpp * 5)}
    # a page of text, cards and figures, not one background colour
    assert len(colours) > 50
