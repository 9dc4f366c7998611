# Declarations of ext/core/bridge.pyx.
cdef MessageBridge need_bridge(MessageBridge bridge, object body)
cdef bint ensemble_has_oip(list outcomes)
cdef object oip_merge_ensemble(MessageBridge bridge, PlanNode node, list outcomes)
cdef object oip_merge_sequence(MessageBridge bridge, PlanNode node, list answered)
