"""mapPredictionsToInstances micro benchmark: microseconds per call of the engine's Go
round trip (engine._core.map_predictions_to_instances) against an orjson decode +
encode of the same body (what the engine did before, and not Go's bytes), on two
bodies of about 1 KB measured in the same run.

    python -m bench.map_predictions_micro [--number 20000] [--repeat 15]

The figure is the best of ``repeat`` timeit runs of ``number`` calls each.
"""
from __future__ import annotations

import argparse
import random
import timeit

import orjson

from engine import _core


def bodies() -> dict[str, bytes]:
    rng = random.Random(1)
    # float32 scores printed by Python's json (17 significant digits), other keys
    rows = [[float(f"{rng.random():.8g}") + 1e-9 * rng.random() for _ in range(10)] for _ in range(5)]
    floats = orjson.dumps({"predictions": rows, "model_name": "m", "model_version": "1"})
    # detections: small objects whose keys Go sorts
    objects = orjson.dumps({"predictions": [
        {"label": rng.choice(["cat", "dog"]), "score": round(rng.random(), 6),
         "box": [rng.randint(0, 600) for _ in range(4)]} for _ in range(12)]})
    return {"50 floats": floats, "12 objects": objects}


def orjson_round_trip(body):
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body
    if type(doc) is dict and "predictions" in doc:
        return orjson.dumps({"instances": doc["predictions"]})
    return body


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.map_predictions_micro", description=__doc__)
    parser.add_argument("--number", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args(argv)
    print(f"best of {args.repeat} x {args.number} calls, us per call")
    for name, body in bodies().items():
        row = []
        for label, fn in (("go round trip", _core.map_predictions_to_instances), ("orjson", orjson_round_trip)):
            t = min(timeit.repeat(lambda: fn(body), number=args.number, repeat=args.repeat))
            row.append(f"{label} {t / args.number * 1e6:.2f}")
        print(f"{name} ({len(body)} B): " + ", ".join(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
