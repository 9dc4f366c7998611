# Protocol bridging (docs/oip.md, "Bridging"): a step body is either a bytes-like
# object (JSON or any payload, the KServe v1 path, untouched here) or an OIP message,
# an engine.oip.InferRequest / InferResponse (both oip/codec.pyx's Message). The
# executor only asks which of the two it holds (is_oip: one type check after the
# bytes check); every conversion between protocols is engine/bridge.py's, handed to
# the plan by the compiler as one MessageBridge (core/plan.pyx; CompiledPlan.bridge)
# and to the backends that convert at their construction.


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


cdef object oip_merge_sequence(MessageBridge bridge, PlanNode node, list answered):
    """A Sequence with ``outputs: all`` in which some step answered an OIP message: one
    InferResponse with every answered step's outputs named ``<key>.<output>``, in step
    order (``answered``: the StepResults of the node's first steps)."""
    cdef PlanStep step
    keys, bodies = [], []
    for i in range(len(answered)):
        step = <PlanStep>node.steps[i]
        keys.append(step.name if step.name else str(step.index))
        bodies.append((<StepResult>answered[i]).body)
    return need_bridge(bridge, bodies[0]).merge(keys, bodies, "sequence")
