# Declarations of ext/json/go_json.pyx.
cdef struct GoNumber:                   # a JSON number as strconv.ParseFloat reads it
    unsigned long long man              # its first 19 significant digits
    int digits                          # how many digits man holds
    int exp10                           # the number is man * 10**exp10 (unless truncated)
    bint neg
    bint truncated                      # nonzero digits after the 19th
    bint plain                          # no exponent, no trailing zero in its fraction


cdef struct GoMember:                   # one member of an object being re-encoded
    Py_ssize_t key_at                   # its decoded key in GoJsonRoundTrip.keys
    Py_ssize_t key_len
    Py_ssize_t start                    # its "key":value in GoJsonRoundTrip.out
    Py_ssize_t end


cdef struct GoObject:                   # an object being re-encoded
    Py_ssize_t body_at                  # out offset just after its {
    Py_ssize_t first                    # index of its first member in members
    Py_ssize_t keys_at                  # keys' length when it opened
    Py_ssize_t key_at                   # the pending member's key, until its value ends
    Py_ssize_t key_len
    Py_ssize_t key_start


cdef class GoJsonRoundTrip:
    cdef const unsigned char *src
    cdef Py_ssize_t n
    cdef Py_ssize_t pos
    cdef ByteBuf out                      # the re-encoded predictions (and room after them)
    cdef ByteBuf scratch                  # one decoded string, or an object's sorted members
    cdef ByteBuf keys                     # decoded keys of the open objects' members
    cdef ByteBuf members                  # GoMember records of the open objects
    cdef ByteBuf frames                   # GoObject records, innermost last
    cdef ByteBuf kinds                    # b"{" or b"[" per open container (data only)

    cdef object run(self, const unsigned char *src, Py_ssize_t n)
    cdef void skip_ws(self) noexcept
    cdef Py_ssize_t scan_string(self, Py_ssize_t i, bint *plain) noexcept
    cdef int unquote(self, Py_ssize_t i, Py_ssize_t end) except -1
    cdef int encode_scratch(self) except -1
    cdef int emit_string(self, Py_ssize_t i, Py_ssize_t end, bint plain) except -1
    cdef Py_ssize_t scan_number(self, Py_ssize_t i) noexcept
    cdef int emit_number(self, Py_ssize_t start, Py_ssize_t end) except -1
    cdef int literal(self, const char *word, Py_ssize_t size, bint emit) except -1
    cdef int member_key(self, bint emit) except -1
    cdef int open_object(self) except -1
    cdef int end_member(self) except -1
    cdef int close_object(self) except -1
    cdef int value(self, bint emit, int depth) except -1


cdef object go_map_predictions(object body)
