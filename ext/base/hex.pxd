# One hexadecimal digit's value, for every parser that reads hex (JSON \u escapes,
# GJSON's unescaping, HTTP chunk sizes). Defined inline here, not in a .pyx, so that
# engine._core and engine._gjson both include it and each call compiles to a few
# comparisons.
cdef inline int hex_digit(unsigned char c) noexcept nogil:
    if 48 <= c <= 57:
        return c - 48
    if 97 <= c <= 102:
        return c - 87
    if 65 <= c <= 70:
        return c - 55
    return -1
