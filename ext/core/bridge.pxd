# Declarations of ext/core/bridge.pyx.
cdef bint is_oip(object body)
cdef object oip_condition_body(object body)
cdef bint ensemble_has_oip(list outcomes)
cdef object oip_merge_ensemble(PlanNode node, list outcomes)
cdef object oip_json_body(object body)
