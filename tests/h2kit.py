"""HTTP/2 by hand for the native gRPC front end's tests: frames written with struct,
header blocks with hpack's encoder (the peer's side only), and a blocking reader
with a timeout on every read."""
from __future__ import annotations

import socket
import struct

import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, \
    CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20

NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR, SETTINGS_TIMEOUT, STREAM_CLOSED, \
    FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, COMPRESSION_ERROR = range(10)

SERVER_LIVE = b"/inference.GRPCInferenceService/ServerLive"
MODEL_INFER = b"/inference.GRPCInferenceService/ModelInfer"


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + \
        struct.pack(">I", stream) + payload


def settings(*pairs) -> bytes:
    return frame(SETTINGS, 0, 0, b"".join(struct.pack(">HI", k, v) for k, v in pairs))


def grpc_message(body: bytes) -> bytes:
    return b"\x00" + struct.pack(">I", len(body)) + body


def request_block(path: bytes = SERVER_LIVE, extra=(), encoder=None) -> bytes:
    encoder = encoder or hpack.Encoder()
    return encoder.encode([(b":method", b"POST"), (b":scheme", b"http"), (b":path", path),
                           (b":authority", b"127.0.0.1"), (b"content-type", b"application/grpc"),
                           (b"te", b"trailers"), *extra])


def unary_request(stream: int = 1, path: bytes = SERVER_LIVE, body: bytes = b"",
                  encoder=None) -> bytes:
    """HEADERS then one DATA frame with the message and END_STREAM."""
    return frame(HEADERS, END_HEADERS, stream, request_block(path, encoder=encoder)) + \
        frame(DATA, END_STREAM, stream, grpc_message(body))


def client_start() -> bytes:
    return PREFACE + settings()


class Peer:
    """A blocking client connection; every read is bounded by ``timeout``."""

    def __init__(self, port: int, timeout: float = 5.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        self.decoder = hpack.Decoder()
        # give the window back for every DATA frame read, as a reading client does
        self.ack_data = True

    def send(self, data: bytes):
        self.sock.sendall(data)

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def handshake(self, *pairs):
        """Preface and SETTINGS both ways, acknowledged both ways: from here the
        server's SETTINGS (its windows) are in force."""
        self.send(PREFACE + settings(*pairs))
        seen_settings = seen_ack = False
        for _ in range(100):
            kind, flags, _, _ = self.read_frame()
            if kind == SETTINGS and flags & ACK:
                seen_ack = True
            elif kind == SETTINGS:
                self.send(frame(SETTINGS, ACK, 0))
                seen_settings = True
            if seen_ack and seen_settings:
                return
        raise AssertionError("no SETTINGS exchange")

    def _fill(self, n: int) -> bool:
        while len(self.buf) < n:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                return False
            if not chunk:
                return False
            self.buf += chunk
        return True

    def read_frame(self):
        """(kind, flags, stream, payload), or None at EOF. socket.timeout when the
        server says nothing for ``timeout`` seconds."""
        if not self._fill(9):
            return None
        n = int.from_bytes(self.buf[:3], "big")
        if not self._fill(9 + n):
            return None
        head, payload, self.buf = self.buf[:9], self.buf[9:9 + n], self.buf[9 + n:]
        return head[3], head[4], int.from_bytes(head[5:9], "big") & 0x7FFFFFFF, payload

    def frames_until(self, done, limit: int = 10_000):
        """Frames read (answering PINGs and SETTINGS) until ``done(frame)`` or EOF."""
        out = []
        for _ in range(limit):
            f = self.read_frame()
            if f is None:
                return out
            out.append(f)
            kind, flags, _, payload = f
            if kind == SETTINGS and not flags & ACK:
                self.send(frame(SETTINGS, ACK, 0))
            elif kind == DATA and payload and self.ack_data:
                inc = struct.pack(">I", len(payload))
                self.send(frame(WINDOW_UPDATE, 0, 0, inc) + frame(WINDOW_UPDATE, 0, f[2], inc))
            if done(f):
                return out
        raise AssertionError("too many frames")

    def answer(self, stream: int = 1):
        """The frames of ``stream``'s answer, up to its END_STREAM or RST_STREAM (or a
        GOAWAY, or EOF), with header blocks decoded: [(kind, flags, payload or headers)]."""
        out = []
        for kind, flags, sid, payload in self.frames_until(
                lambda f: f[0] == GOAWAY or (f[2] == stream and (
                    f[0] == RST_STREAM or (f[0] in (HEADERS, DATA) and f[1] & END_STREAM)))):
            if kind == HEADERS:
                out.append((kind, flags, dict(self.decoder.decode(payload, raw=True))))
            elif sid in (0, stream) and kind in (DATA, RST_STREAM, GOAWAY):
                out.append((kind, flags, payload))
        return out

    def goaway(self):
        """The error code of the GOAWAY the server sends (None: it closed without one)."""
        for kind, _, _, payload in self.frames_until(lambda f: f[0] == GOAWAY):
            if kind == GOAWAY:
                return int.from_bytes(payload[4:8], "big")
        return None

    def closed(self) -> bool:
        """True once the server closes (reads up to EOF, dropping what comes)."""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
        except ConnectionResetError:
            return True


def live_ok(answer) -> bool:
    """A ServerLive answer: 200, its message (live: true), grpc-status 0."""
    heads = [a for a in answer if a[0] == HEADERS]
    datas = b"".join(a[2] for a in answer if a[0] == DATA)
    return len(heads) == 2 and heads[0][2].get(b":status") == b"200" and \
        datas == grpc_message(b"\x08\x01") and heads[1][2].get(b"grpc-status") == b"0"
