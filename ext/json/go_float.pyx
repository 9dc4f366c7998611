# float64 <-> decimal text as Go's strconv does it inside encoding/json:
#   parse: ParseFloat's Eisel-Lemire path (correctly rounded, or it declines), else
#          Python's correctly rounded strtod, which gives the same float64;
#   print: AppendFloat(f, 'f' or 'e', -1, 64), i.e. the shortest decimal that rounds
#          back to f, the closest such when there are several. It is computed here
#          with Schubfach (R. Giulietti, "The Schubfach way to render doubles", 2020),
#          whose shortest decimal is the one Go's Ryu and Python's repr give.
# The power-of-ten tables both need are computed exactly, with Python integers, the
# first time a number needs them.
from libc.stdint cimport uint64_t, int64_t

cdef extern from *:
    """
    #include <string.h>
    typedef unsigned __int128 ige_u128;
    static inline uint64_t ige_mul_hi(uint64_t a, uint64_t b) {
        return (uint64_t)(((ige_u128)a * b) >> 64);
    }
    static inline int ige_clz64(uint64_t x) { return __builtin_clzll(x); }
    static inline uint64_t ige_bits_of(double x) { uint64_t u; memcpy(&u, &x, 8); return u; }
    static inline double ige_double_of(uint64_t u) { double x; memcpy(&x, &u, 8); return x; }
    """
    uint64_t ige_mul_hi(uint64_t a, uint64_t b) noexcept nogil
    int ige_clz64(uint64_t x) noexcept nogil
    uint64_t ige_bits_of(double x) noexcept nogil
    double ige_double_of(uint64_t u) noexcept nogil

cdef enum:
    # Eisel-Lemire: 10**e for e in [POW10_MIN, POW10_MIN + POW10_COUNT)
    POW10_MIN = -348
    POW10_COUNT = 696
    # Schubfach: g(k) for k in [K_MIN, K_MIN + K_COUNT), float64's binary exponents
    # q in [Q_MIN, Q_MIN + Q_COUNT)
    K_MIN = -324
    K_COUNT = 617
    Q_MIN = -1074
    Q_COUNT = 2046
    # ParseFloat reads at most this many significant digits into its uint64
    MAX_MANTISSA_DIGITS = 19

cdef uint64_t _POW10_HI[POW10_COUNT]    # floor(10**e * 2**s), normalised to 128 bits
cdef uint64_t _POW10_LO[POW10_COUNT]
cdef uint64_t _G1[K_COUNT]              # g = floor(10**-k / 2**r) + 1, 2**125 <= g < 2**126,
cdef uint64_t _G0[K_COUNT]              #     split as g1 * 2**63 + g0
cdef int _FLOG2_POW10[K_COUNT]          # floor(log2(10**-k))
cdef short _K_REGULAR[Q_COUNT]          # floor(log10(2**q))
cdef short _K_IRREGULAR[Q_COUNT]        # floor(log10(3/4 * 2**q))
cdef bint _float_tables_ready = False
# 10**0 .. 10**22 are exact float64 values, and so is any integer up to 2**53
cdef double _EXACT_POW10[23]
cdef uint64_t _EXACT_MANTISSA = (<uint64_t>1) << 53

cdef uint64_t _MASK63 = 0x7FFFFFFFFFFFFFFF
cdef uint64_t _FRACTION = 0xFFFFFFFFFFFFF         # float64's 52 fraction bits
cdef uint64_t _C_MIN = (<uint64_t>1) << 52


def _floor_log2(n, d):
    """floor(log2(n / d)) for positive integers."""
    r = n.bit_length() - d.bit_length()
    if (n < (d << r)) if r >= 0 else ((n << -r) < d):
        r -= 1
    return r


def _floor_log10(n, d):
    """floor(log10(n / d)) for positive integers."""
    k = int((n.bit_length() - d.bit_length()) * 0.3010299956639812) - 2
    while True:
        nxt = k + 1     # is 10**nxt <= n / d ?
        if (d * 10 ** nxt <= n) if nxt >= 0 else (d <= n * 10 ** -nxt):
            k = nxt
        else:
            return k


cdef int build_float_tables() except -1:
    global _float_tables_ready
    cdef int i
    mask64 = (1 << 64) - 1
    for i in range(POW10_COUNT):
        e = POW10_MIN + i
        if e >= 0:
            p = 10 ** e
            size = p.bit_length()
            m = p << (128 - size) if size <= 128 else p >> (size - 128)
        else:
            d = 10 ** -e
            m = (1 << (127 + d.bit_length())) // d
        _POW10_HI[i] = m >> 64
        _POW10_LO[i] = m & mask64
    for i in range(K_COUNT):
        k = K_MIN + i
        n, d = (10 ** -k, 1) if k <= 0 else (1, 10 ** k)
        r0 = _floor_log2(n, d)
        r = r0 - 125
        g = (n // (d << r) if r >= 0 else (n << -r) // d) + 1
        _G1[i] = g >> 63
        _G0[i] = g & ((1 << 63) - 1)
        _FLOG2_POW10[i] = r0
    for i in range(Q_COUNT):
        q = Q_MIN + i
        _K_REGULAR[i] = _floor_log10(1 << q, 1) if q >= 0 else _floor_log10(1, 1 << -q)
        _K_IRREGULAR[i] = _floor_log10(3 << (q - 2), 1) if q >= 2 else _floor_log10(3, 1 << (2 - q))
    for i in range(23):
        _EXACT_POW10[i] = float(10 ** i)
    _float_tables_ready = True
    return 0


# ---- parsing --------------------------------------------------------------------------

cdef bint eisel_lemire(uint64_t man, int exp10, bint neg, double *out) noexcept:
    """man * 10**exp10 correctly rounded, as strconv's eiselLemire64 computes it; False
    where it cannot decide (halfway cases, subnormals, overflow)."""
    cdef int clz, idx
    cdef uint64_t hi, lo, x_hi, x_lo, y_hi, y_lo, mant, msb, bits
    cdef int64_t exp2
    if man == 0:
        out[0] = -0.0 if neg else 0.0
        return True
    if exp10 < POW10_MIN or exp10 >= POW10_MIN + POW10_COUNT:
        return False
    idx = exp10 - POW10_MIN
    hi = _POW10_HI[idx]
    lo = _POW10_LO[idx]
    clz = ige_clz64(man)
    man <<= clz
    # floor(log2(10)) * exp10 + 64 + float64's exponent bias, minus the normalising shift
    exp2 = ((<int64_t>217706 * exp10) >> 16) + 64 + 1023 - clz
    x_hi = ige_mul_hi(man, hi)
    x_lo = man * hi
    if (x_hi & 0x1FF) == 0x1FF and x_lo + man < man:
        # the 64-bit product may be off by one in the bits that decide: widen to 128
        y_hi = ige_mul_hi(man, lo)
        y_lo = man * lo
        lo = x_lo + y_hi
        if lo < x_lo:
            x_hi += 1
        if (x_hi & 0x1FF) == 0x1FF and lo + 1 == 0 and y_lo + man < man:
            return False
        x_lo = lo
    msb = x_hi >> 63
    mant = x_hi >> (msb + 9)
    exp2 -= <int64_t>(1 ^ msb)
    if x_lo == 0 and (x_hi & 0x1FF) == 0 and (mant & 3) == 1:
        return False        # exactly halfway: the 128-bit view cannot tell
    mant += mant & 1
    mant >>= 1
    if mant >> 53:
        mant >>= 1
        exp2 += 1
    if exp2 <= 0 or exp2 >= 0x7FF:
        return False
    bits = (<uint64_t>exp2 << 52) | (mant & _FRACTION)
    if neg:
        bits |= (<uint64_t>1) << 63
    out[0] = ige_double_of(bits)
    return True


cdef void read_number(const unsigned char *s, Py_ssize_t n, GoNumber *num) noexcept:
    """One pass over a valid JSON number: what ParseFloat reads from it, and whether it
    is written as Go would write a float64 (no exponent, no trailing fraction zero)."""
    cdef Py_ssize_t i = 0
    cdef uint64_t man = 0
    cdef int digits = 0, exp10 = 0, exp = 0
    cdef bint exp_neg = False, fraction = False
    cdef unsigned char c
    num.neg = s[0] == b'-'
    num.truncated = False
    if num.neg:
        i = 1
    while i < n:
        c = s[i]
        if c == b'.':
            fraction = True
        elif b'0' <= c <= b'9':
            if man == 0 and c == b'0':
                if fraction:
                    exp10 -= 1          # a leading zero of the fraction
            elif digits < MAX_MANTISSA_DIGITS:
                man = man * 10 + (c - 48)
                digits += 1
                if fraction:
                    exp10 -= 1
            else:
                num.truncated = num.truncated or c != b'0'
                if not fraction:
                    exp10 += 1
        else:
            break
        i += 1
    num.plain = i == n and not (fraction and s[n - 1] == b'0')
    if i < n:       # the exponent
        i += 1
        if s[i] == b'-':
            exp_neg = True
            i += 1
        elif s[i] == b'+':
            i += 1
        while i < n:
            if exp < 100000:
                exp = exp * 10 + (s[i] - 48)
            i += 1
        exp10 += -exp if exp_neg else exp
    num.man = man
    num.digits = digits
    num.exp10 = exp10


cdef double number_value(const unsigned char *s, Py_ssize_t n, GoNumber *num) except? -1.0:
    """strconv.ParseFloat(s, 64) of a JSON number read by read_number; inf where Go
    reports a range error (underflow is 0 without an error, in Go as here)."""
    cdef double x
    cdef char small[64]
    cdef char *text = small
    if not _float_tables_ready:
        build_float_tables()
    if not num.truncated:
        if num.man <= _EXACT_MANTISSA and -22 <= num.exp10 <= 22:
            # both operands exact: one IEEE operation rounds correctly (atof64exact)
            x = <double>num.man
            x = x * _EXACT_POW10[num.exp10] if num.exp10 >= 0 else x / _EXACT_POW10[-num.exp10]
            return -x if num.neg else x
        if eisel_lemire(num.man, num.exp10, num.neg, &x):
            return x
    if n >= 64:
        text = <char*>PyMem_Malloc(n + 1)
        if text == NULL:
            raise MemoryError()
    try:
        memcpy(text, s, n)
        text[n] = 0
        return PyOS_string_to_double(text, NULL, NULL)
    finally:
        if text != small:
            PyMem_Free(text)


cdef int put_go_number(ByteBuf *b, const unsigned char *s, Py_ssize_t n) except -1:
    """The JSON number s[:n] as Go re-encodes it through float64; 1 when it is out of
    float64's range (ParseFloat fails, and so does Unmarshal)."""
    cdef GoNumber num
    cdef double x
    cdef uint64_t digits, man
    cdef int exp10, exp
    read_number(s, n, &num)
    # At most 15 significant digits (DBL_DIG) and no exponent: the text is the shortest
    # decimal of its float64, written as Go writes it, unless it is below 1e-6.
    if num.plain and num.digits <= 15 and (num.man == 0 or num.digits + num.exp10 >= -5):
        return buf_put(b, <const char*>s, n)
    x = number_value(s, n, &num)
    if isinf(x):
        return 1
    if x == 0:
        return buf_put(b, b"-0", 2) if ige_bits_of(x) >> 63 else buf_byte(b, b'0')
    trimmed_shortest_decimal(x, &digits, &exp10)
    if num.plain and not num.truncated and 1e-6 <= fabs(x) < 1e21:
        # longer texts often are the shortest decimal already (another JSON encoder's)
        man = num.man
        exp = num.exp10
        while man % 10 == 0:
            man //= 10
            exp += 1
        if man == digits and exp == exp10:
            return buf_put(b, <const char*>s, n)
    return put_decimal(b, x, digits, exp10)


# ---- printing -------------------------------------------------------------------------

cdef inline uint64_t round_to_odd(uint64_t g1, uint64_t g0, uint64_t cp) noexcept:
    """floor(cp * g / 2**127), its lowest bit set when anything was cut off."""
    cdef uint64_t x1 = ige_mul_hi(g0, cp)
    cdef uint64_t y0 = g1 * cp
    cdef uint64_t y1 = ige_mul_hi(g1, cp)
    cdef uint64_t z = (y0 >> 1) + x1
    cdef uint64_t vb = y1 + (z >> 63)
    return vb | (((z & _MASK63) + _MASK63) >> 63)


cdef inline void trimmed_shortest_decimal(double x, uint64_t *digits, int *exp10) noexcept:
    """shortest_decimal without trailing zero digits (x nonzero)."""
    shortest_decimal(x, digits, exp10)
    while digits[0] % 10 == 0:
        digits[0] //= 10
        exp10[0] += 1


cdef void shortest_decimal(double x, uint64_t *digits, int *exp10) noexcept:
    """|x| = digits * 10**exp10 with the fewest digits that read back as x (the
    closest such decimal, ties to even); x finite and not zero."""
    cdef uint64_t bits = ige_bits_of(x)
    cdef uint64_t frac = bits & _FRACTION
    cdef int biased = <int>((bits >> 52) & 0x7FF)
    cdef int q, k, h, mq
    cdef uint64_t c, cb, cbl, cbr, vb, vbl, vbr, s, t, up, wp, g1, g0
    cdef bint odd, u_in, w_in
    cdef int64_t cmp
    if biased:
        c = _C_MIN | frac
        mq = 1075 - biased
        if 0 < mq < 53 and ((c >> mq) << mq) == c:
            digits[0] = c >> mq     # an integer below 2**53: its own digits are shortest
            exp10[0] = 0
            return
        q = -mq
    else:
        c = frac
        q = Q_MIN
    # the decimals that read back as x are those inside (cbl, cbr) * 2**q / 4,
    # bounds included when c is even (round half to even)
    odd = c & 1
    cb = c << 2
    cbr = cb + 2
    if c != _C_MIN or q == Q_MIN:
        cbl = cb - 2
        k = _K_REGULAR[q - Q_MIN]
    else:
        cbl = cb - 1        # at a power of two the float below is closer
        k = _K_IRREGULAR[q - Q_MIN]
    # scaled by 10**-k, the interval is less than 10 wide: s and s + 1 bracket x
    h = q + _FLOG2_POW10[k - K_MIN] + 2
    g1 = _G1[k - K_MIN]
    g0 = _G0[k - K_MIN]
    vb = round_to_odd(g1, g0, cb << h)
    vbl = round_to_odd(g1, g0, cbl << h)
    vbr = round_to_odd(g1, g0, cbr << h)
    s = vb >> 2
    if s >= 10:
        # one digit fewer: at most one multiple of 10 can be inside
        up = (s // 10) * 10
        wp = up + 10
        u_in = vbl + odd <= up << 2
        w_in = (wp << 2) + odd <= vbr
        if u_in != w_in:
            digits[0] = up if u_in else wp
            exp10[0] = k
            return
    t = s + 1
    u_in = vbl + odd <= s << 2
    w_in = (t << 2) + odd <= vbr
    exp10[0] = k
    if u_in != w_in:
        digits[0] = s if u_in else t
        return
    cmp = <int64_t>vb - <int64_t>((s + t) << 1)
    digits[0] = s if cmp < 0 or (cmp == 0 and (s & 1) == 0) else t


cdef int put_go_float(ByteBuf *b, double x) except -1:
    """x as Go's encoding/json writes a float64 (x finite)."""
    cdef uint64_t digits
    cdef int exp10
    if not _float_tables_ready:
        build_float_tables()
    if x == 0:
        return buf_put(b, b"-0", 2) if ige_bits_of(x) >> 63 else buf_byte(b, b'0')
    trimmed_shortest_decimal(x, &digits, &exp10)
    return put_decimal(b, x, digits, exp10)


cdef int put_decimal(ByteBuf *b, double x, uint64_t digits, int exp10) except -1:
    """x = digits * 10**exp10 (no trailing zeros in digits) in Go's float64 format:
    positional from 1e-6 up to 1e21, else d.ddde-7 / d.ddde+21 (no padding)."""
    cdef char text[24]
    cdef int nd = 0, point, k
    cdef char *d
    cdef char *p
    while digits:
        text[23 - nd] = <char>(48 + digits % 10)
        digits //= 10
        nd += 1
    d = text + 24 - nd
    point = nd + exp10      # x = 0.d * 10**point
    # the longest forms: -0.000000ddddddddddddddddd, -ddddddddddddddddd0000 (up to 1e21),
    # -d.dddddddddddddddde-324
    buf_reserve(b, 32)
    p = b.data + b.len
    if ige_bits_of(x) >> 63:
        p[0] = b'-'
        p += 1
    if fabs(x) < 1e-6 or fabs(x) >= 1e21:
        p[0] = d[0]
        p += 1
        if nd > 1:
            p[0] = b'.'
            memcpy(p + 1, d + 1, nd - 1)
            p += nd
        p[0] = b'e'
        k = point - 1
        p[1] = b'-' if k < 0 else b'+'
        p += 2
        k = -k if k < 0 else k
        if k >= 100:
            p[0] = <char>(48 + k // 100)
            p += 1
        if k >= 10:
            p[0] = <char>(48 + (k // 10) % 10)
            p += 1
        p[0] = <char>(48 + k % 10)
        p += 1
    elif point <= 0:
        p[0] = b'0'
        p[1] = b'.'
        p += 2
        for k in range(-point):
            p[k] = b'0'
        p += -point
        memcpy(p, d, nd)
        p += nd
    elif point >= nd:
        memcpy(p, d, nd)
        p += nd
        for k in range(point - nd):
            p[k] = b'0'
        p += point - nd
    else:
        memcpy(p, d, point)
        p[point] = b'.'
        memcpy(p + point + 1, d + point, nd - point)
        p += nd + 1
    b.len = p - b.data
    return 0


def go_format_float(double x):
    """Go's encoding/json text of the float64 ``x`` (finite), as bytes."""
    cdef ByteBuf b
    b.data = NULL
    b.len = b.cap = 0
    try:
        put_go_float(&b, x)
        return PyBytes_FromStringAndSize(b.data, b.len)
    finally:
        PyMem_Free(b.data)


def go_parse_float(text):
    """strconv.ParseFloat(text, 64) of a JSON number: a float, inf on a range error."""
    cdef bytes data = bytes(text)
    cdef GoNumber num
    read_number(<const unsigned char*>data, len(data), &num)
    return number_value(<const unsigned char*>data, len(data), &num)
