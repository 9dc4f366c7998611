# Declarations of ext/core/bridge.pyx.
cdef class MessageBridge:
    cdef readonly object header_json
    cdef readonly object merge
    cdef readonly object json_body
    cdef readonly object local_call
    cdef readonly object http_answer


cdef MessageBridge need_bridge(MessageBridge bridge, object body)
cdef bint ensemble_has_oip(list outcomes)
cdef object oip_merge_ensemble(MessageBridge bridge, PlanNode node, list outcomes)
