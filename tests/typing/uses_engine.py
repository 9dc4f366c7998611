"""A program using the public API, type-checked by tests/test_typing.py."""
import asyncio

import engine
from engine import _core, gjson


async def main() -> int:
    graph: engine.Graph = engine.load({"nodes": {"root": {"routerType": "Sequence",
                                                          "steps": [{"serviceName": "m"}]}}},
                                      services={"m": lambda payload: {"predictions": [1]}})
    problems: list[engine.Diagnostic] = graph.validate()
    plan = graph.compile()
    response = await plan.infer({"instances": [1]})
    status: int = response.status
    data = response.json()
    path = gjson.compile("predictions.0")
    found: bool = path.get(bytes(response.body)).exists
    app = _core.GraphApp(plan.compiled, plan.propagation)
    total: int = app.requests_total
    await plan.aclose()
    return status + len(problems) + int(found) + total + len(str(data))


if __name__ == "__main__":
    print(asyncio.run(main()))
