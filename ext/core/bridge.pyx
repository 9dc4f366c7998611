# Protocol bridging (docs/oip.md, "Bridging"): a step body is either a bytes-like
# object (JSON or any payload, the KServe v1 path, untouched here) or an OIP message,
# an engine.oip.InferRequest / InferResponse (both oip/codec.pyx's Message). The
# executor only asks which of the two it holds (is_oip: one type check after the
# bytes check); every conversion between protocols is engine/bridge.py's, handed to
# the plan by the compiler as one MessageBridge (CompiledPlan.bridge) and to the
# backends that convert at their construction.


@cython.final
cdef class MessageBridge:
    """The converters a plan needs for OIP messages (engine.bridge.BRIDGE)."""

    def __init__(self, *, header_json, merge, json_body, local_call, http_answer):
        self.header_json = header_json      # message -> JSON header bytes (no tensor data)
        self.merge = merge                  # (keys, bodies) -> InferResponse
        self.json_body = json_body          # message -> v2 JSON request bytes (v1 backends)
        self.local_call = local_call        # (fn, wants_headers, message, ctx) -> result
        self.http_answer = http_answer      # message -> bytes (v2 JSON) for a plain HTTP answer


cdef MessageBridge need_bridge(MessageBridge bridge, object body):
    """``bridge``, which a message ``body`` needs (InternalEngineError without one: a
    plan or backend built by hand, without the compiler)."""
    if bridge is None:
        raise _InternalEngineError(f"no message bridge for a {type(body).__name__} body: "
                                   "build plans with engine.compiler")
    return bridge


cdef bint ensemble_has_oip(list outcomes):
    for o in outcomes:
        if type(o) is StepResult and is_oip((<StepResult>o).body):
            return True
    return False


cdef object oip_merge_ensemble(MessageBridge bridge, PlanNode node, list outcomes):
    """An Ensemble in which some step answered an OIP message: one InferResponse with
    every step's outputs named ``<key>.<output>``, steps in Go's key order."""
    cdef PlanStep step
    keys, bodies = [], []
    for i in node.ensemble_order:
        step = <PlanStep>node.steps[i]
        keys.append(step.name if step.name else str(step.index))
        bodies.append((<StepResult>outcomes[i]).body)
    return need_bridge(bridge, bodies[0]).merge(keys, bodies)
