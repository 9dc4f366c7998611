"""bench/hangup.py runs end to end and reports every figure (small and quick here)."""
from __future__ import annotations

import json
import subprocess
import sys


def test_hangup_bench_reports_its_figures():
    out = subprocess.run([sys.executable, "-m", "bench.hangup", "--clients", "4", "--hold", "0.5",
                          "--give-up", "0.05", "--settle", "0.2", "--step", "v1"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert set(result) == {"http_next_request_s", "http_sent_after_clients_left", "http_reached_model",
                           "grpc_next_call_s", "grpc_then_http_request_s",
                           "grpc_sent_after_clients_left", "grpc_reached_model"}
    assert result["http_reached_model"] == result["grpc_reached_model"] == 4
    assert result["http_sent_after_clients_left"] == result["grpc_sent_after_clients_left"] == 0
