"""One structured log record per failed step call (KServe #2722): a model's non-2xx
answer or a transport failure, with graph, node, step, target, status or error, and
the call's duration. Successful steps, node steps and node-level failures (a Switch
miss) log nothing."""
from __future__ import annotations

import json
import logging

import orjson
import pytest

import engine
from engine import _core
from engine.logs import JsonFormatter
from routerkit import ModelServer, closed_port, running_router, static


class Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)

    @property
    def failures(self):
        return [r for r in self.records if r.getMessage() == "step failed"]


@pytest.fixture
def steps_log():
    logger = logging.getLogger("engine.steps")
    handler = Records()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    _core.set_step_failure_log(logger)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        _core.set_step_failure_log(logger)


def fields(record):
    return {k: getattr(record, k) for k in ("graph", "node", "step", "target", "status", "error")
            if hasattr(record, k)}


def model(status, answer=None):
    def fn(payload):
        return (status, answer if answer is not None else {"status": status})
    return fn


def run(loop, spec, body=None, **services):
    g = engine.load(spec, services=services)
    return loop.run(g.compile().infer(body if body is not None else {"instances": [1]}))


def test_a_non_2xx_answer_is_one_record(loop, steps_log):
    spec = {"apiVersion": "serving.kserve.io/v1alpha1", "kind": "InferenceGraph",
            "metadata": {"name": "g"}, "spec": {"nodes": {"root": {"routerType": "Sequence", "steps": [
        {"name": "first", "serviceName": "bad"}, {"serviceName": "good"}]}}}}
    r = run(loop, spec, bad=model(503), good=model(200))
    assert r.status == 200
    [record] = steps_log.failures
    assert record.levelno == logging.WARNING
    assert fields(record) == {"graph": "g", "node": "root", "step": "first", "target": "local:bad", "status": 503}
    assert isinstance(record.ms, float) and record.ms >= 0


def test_a_4xx_answer_is_info_and_a_step_without_name_is_its_index(loop, steps_log):
    spec = {"nodes": {"root": {"routerType": "Sequence", "steps": [
        {"serviceName": "good"}, {"serviceName": "bad", "dependency": "Hard"}]}}}
    r = run(loop, spec, bad=model(400), good=model(200))
    assert r.status == 400
    [record] = steps_log.failures
    assert record.levelno == logging.INFO and (record.step, record.status) == ("1", 400)


def test_successful_steps_log_nothing(loop, steps_log):
    spec = {"nodes": {"root": {"routerType": "Sequence", "steps": [
        {"serviceName": "good"}, {"serviceName": "good", "data": "$response"}]}}}
    assert run(loop, spec, good=model(200)).status == 200
    assert steps_log.records == []


def test_a_switch_miss_is_no_step_failure(loop, steps_log):
    spec = {"nodes": {"root": {"routerType": "Switch", "steps": [
        {"serviceName": "good", "condition": "nothing"}]}}}
    assert run(loop, spec, good=model(200)).status == 404
    assert steps_log.failures == []


def test_switch_and_splitter_steps(loop, steps_log):
    switch = {"nodes": {"root": {"routerType": "Switch", "steps": [
        {"name": "s", "serviceName": "bad", "condition": "instances"}]}}}
    splitter = {"nodes": {"root": {"routerType": "Splitter", "steps": [
        {"name": "w", "serviceName": "bad", "weight": 100}]}}}
    assert run(loop, switch, bad=model(500)).status == 500
    assert run(loop, splitter, bad=model(502)).status == 502
    assert [(r.step, r.status) for r in steps_log.failures] == [("s", 500), ("w", 502)]


def test_ensemble_steps(loop, steps_log):
    spec = {"nodes": {"root": {"routerType": "Ensemble", "steps": [
        {"name": "a", "serviceName": "good"}, {"name": "b", "serviceName": "bad"}]}}}
    r = run(loop, spec, good=model(200), bad=model(500))
    assert r.status == 200      # a Soft step's failure is merged, not fatal
    assert [(r.node, r.step, r.status) for r in steps_log.failures] == [("root", "b", 500)]


def test_the_failing_step_inside_a_node_is_logged_once(loop, steps_log):
    spec = {"nodes": {
        "root": {"routerType": "Sequence", "steps": [{"name": "outer", "nodeName": "inner"}]},
        "inner": {"routerType": "Sequence", "steps": [{"name": "deep", "serviceName": "bad"}]}}}
    assert run(loop, spec, bad=model(503)).status == 503
    assert [(r.node, r.step) for r in steps_log.failures] == [("inner", "deep")]


def test_a_transport_failure_inside_nodes_names_the_step_that_failed(loop, steps_log):
    refused = f"http://127.0.0.1:{closed_port()}/v1/models/m:predict"
    nested = {"nodes": {
        "root": {"routerType": "Sequence", "steps": [{"serviceName": "good"}, {"name": "outer", "nodeName": "inner"}]},
        "inner": {"routerType": "Sequence", "steps": [{"serviceName": "good"}, {"name": "deep", "serviceUrl": refused}]}}}
    assert run(loop, nested, good=model(200)).status == 500
    # concurrent branches of an Ensemble each run a Sequence; only one fails
    branches = {"nodes": {
        "root": {"routerType": "Ensemble", "steps": [{"name": "x", "nodeName": "ok"}, {"name": "y", "nodeName": "broken"},
                                                    {"name": "z", "nodeName": "ok"}]},
        "ok": {"routerType": "Sequence", "steps": [{"serviceName": "good"}, {"name": "later", "serviceName": "good"}]},
        "broken": {"routerType": "Sequence", "steps": [{"name": "bad", "serviceUrl": refused}]}}}
    assert run(loop, branches, good=model(200)).status == 500
    assert [(r.node, r.step, r.target) for r in steps_log.failures] == [
        ("inner", "deep", refused), ("broken", "bad", refused)]
    assert all(r.error.startswith(f'Post "{refused}": dial tcp') for r in steps_log.failures)


def test_a_transport_failure_carries_gos_error_text(loop, steps_log):
    url = f"http://127.0.0.1:{closed_port()}/v1/models/m:predict"

    async def go():
        async with running_router({"nodes": {"root": {"routerType": "Sequence", "steps": [
                {"serviceUrl": url}]}}}) as router:
            return await router.post({"instances": [1]})
    r = loop.run(go())
    cause = orjson.loads(r.body)["cause"]
    [record] = steps_log.failures
    assert record.levelno == logging.WARNING
    assert fields(record) == {"graph": "", "node": "root", "step": "0", "target": url, "error": cause}
    # the router's JSON log line
    line = json.loads(JsonFormatter().format(record))
    assert {k: line[k] for k in ("level", "logger", "msg", "target", "error")} == {
        "level": "warning", "logger": "engine.steps", "msg": "step failed", "target": url, "error": cause}
    assert isinstance(line["ms"], float)


def test_an_http_model_answering_500(loop, steps_log):
    async def go():
        m = await ModelServer(static({"error": "boom"}, status=500)).start()
        try:
            async with running_router({"nodes": {"root": {"routerType": "Sequence", "steps": [
                    {"name": "m", "serviceUrl": m.url}]}}}) as router:
                return m.url, await router.post({})
        finally:
            await m.close()
    url, r = loop.run(go())
    assert r.status == 500
    assert [(rec.target, rec.status) for rec in steps_log.failures] == [(url, 500)]


def test_the_failure_log_can_be_turned_off(loop, steps_log):
    _core.set_step_failure_log(None)
    spec = {"nodes": {"root": {"routerType": "Sequence", "steps": [{"serviceName": "bad"}]}}}
    assert run(loop, spec, bad=model(503)).status == 503
    assert steps_log.records == []
