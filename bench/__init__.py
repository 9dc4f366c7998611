"""Benchmarks for inference-graph-engine.

`bench.mock_server` is a cheap model server for tests and load, `bench.bare_forward`
the floor a router is compared with (a forward with no graph semantics),
`bench.nginx` the C reference, and `python -m bench.load` the load harness that
drives them all with wrk and reports router CPU per request.
"""
