"""Fuzzing the native gRPC front end's HTTP/2 input (nghttp2's frame and HPACK
decoders, and the gRPC framing behind them): random byte streams after a valid
preface, random frames, and mutations of a valid request. Whatever comes, the server
answers or closes the connection once the client is done sending, never crashes,
and serves the next connection."""
from __future__ import annotations

import asyncio
import logging
import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from h2kit import (CONTINUATION, DATA, END_HEADERS, END_STREAM, HEADERS, MODEL_INFER, PING,
                   PRIORITY, RST_STREAM, SETTINGS, WINDOW_UPDATE, Peer, client_start, frame, live_ok,
                   request_block, unary_request)
from routerkit import running_router

FUZZ = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def exchange(port: int, data: bytes) -> None:
    """Send ``data``, half-close, and read until the server closes: every read is
    bounded, so a server that neither answers nor closes fails the test."""
    with Peer(port, timeout=5) as p:
        try:
            p.send(data)
            p.sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            return          # it closed before taking all of it: fine
        assert p.closed()


def serving(port: int) -> None:
    with Peer(port) as p:
        p.send(client_start() + unary_request())
        assert live_ok(p.answer())


@pytest.fixture
def port(loop):
    state = {}

    async def start():
        cm = running_router({"nodes": {"root": {"routerType": "Sequence", "steps": [
            {"serviceUrl": "http://127.0.0.1:1/v2/models/m/infer"}]}}}, grpc=True,
            options={"grpc_impl": "native", "max_grpc_message_size": 1 << 16})
        state["cm"] = cm
        state["router"] = await cm.__aenter__()

    loop.run(start())
    try:
        yield state["router"].grpc_port
    finally:
        loop.run(state["cm"].__aexit__(None, None, None))


def no_errors_logged(caplog):
    # a callback that raised is logged at ERROR before its connection is closed
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def run_in_thread(loop, fn, *args):
    async def go():
        return await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(None, fn, *args), 600)
    return loop.run(go())


frames = st.builds(
    frame,
    st.sampled_from([DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PING, WINDOW_UPDATE, CONTINUATION,
                     7, 5, 0x0A, 0xFF]),
    st.integers(0, 255),
    st.sampled_from([0, 1, 2, 3, 5, 0x7FFFFFFF]),
    st.binary(max_size=64))


def test_random_bytes_after_the_preface(loop, port, caplog):
    @FUZZ
    @given(st.binary(min_size=1, max_size=512))
    def case(data):
        exchange(port, client_start() + data)

    run_in_thread(loop, case)
    run_in_thread(loop, serving, port)
    no_errors_logged(caplog)


def test_random_frames_after_the_preface(loop, port, caplog):
    @FUZZ
    @given(st.lists(frames, min_size=1, max_size=8))
    def case(fs):
        exchange(port, client_start() + b"".join(fs))

    run_in_thread(loop, case)
    run_in_thread(loop, serving, port)
    no_errors_logged(caplog)


VALID = client_start() + unary_request() + \
    frame(HEADERS, END_HEADERS, 3, request_block(MODEL_INFER)) + \
    frame(DATA, END_STREAM, 3, b"\x00\x00\x00\x00\x04\x0a\x02ab")


def test_mutations_of_a_valid_request(loop, port, caplog):
    @FUZZ
    @given(st.lists(st.tuples(st.integers(24, len(VALID) - 1), st.integers(0, 255), st.sampled_from(
        ["flip", "delete", "insert"])), min_size=1, max_size=6), st.integers(24, len(VALID)))
    def case(edits, cut):
        data = bytearray(VALID[:cut])
        for pos, value, how in edits:
            if pos >= len(data):
                continue
            if how == "flip":
                data[pos] ^= value or 1
            elif how == "delete":
                del data[pos]
            else:
                data.insert(pos, value)
        exchange(port, bytes(data))

    run_in_thread(loop, case)
    run_in_thread(loop, serving, port)
    no_errors_logged(caplog)


def test_the_valid_request_itself_is_answered(loop, port):
    # the corpus the mutations start from is a request the server answers
    def go(port):
        with Peer(port) as p:
            p.send(VALID)
            assert live_ok(p.answer(1))
            answer = p.answer(3)
            # a ModelInferRequest for model "ab": the graph's model is not there
            assert answer[-1][2][b"grpc-status"] == b"14"

    run_in_thread(loop, go, port)
