# Included by _gjson.pyx: gjson.ValidBytes, the check the router runs on every Switch
# request, every step answer it inspects, and the final answer.
#
# The grammar is gjson's (RFC 8259 without UTF-8 checks: any byte >= 0x20 other than
# '"' and '\' may sit in a string).  Most request bodies are arrays of numbers or
# small objects, so the loop is written for them: one jump per token, digit runs and
# string bodies classified 8 bytes at a time (SWAR on a 64-bit word), and no read
# past doc[n - 1]: a wide load happens only when 8 bytes remain.

cdef extern from *:
    """
    #include <stdint.h>
    /* 8 document bytes as a little-endian word: byte k of the word is p[k], so the
       lowest flagged byte is the first one in the document on every target. */
    static inline uint64_t gj_load8(const unsigned char* p) {
        uint64_t x;
        memcpy(&x, p, 8);
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        x = __builtin_bswap64(x);
    #endif
        return x;
    }
    #if defined(__GNUC__)
    #define gj_ctz64(x) __builtin_ctzll(x)
    #else
    static inline int gj_ctz64(uint64_t x) { int k = 0; while (!(x & 1u)) { x >>= 1; k++; } return k; }
    #endif
    #define GJ_ONES 0x0101010101010101ULL
    #define GJ_HIGH 0x8080808080808080ULL
    #define gj_isdigit(c) ((unsigned)((c) - '0') < 10u)

    /* Index of the first non-digit in p[i:n] (n when none). */
    static inline Py_ssize_t gj_digits(const unsigned char* p, Py_ssize_t i, Py_ssize_t n) {
        while (i + 8 <= n) {
            uint64_t x = gj_load8(p + i);
            /* a byte is a digit when its high nibble is 3 and its low nibble + 6
               does not carry into bit 4; no step carries across bytes */
            uint64_t bad = ((x & (0xF0 * GJ_ONES)) ^ (0x30 * GJ_ONES))
                         | (((x & (0x0F * GJ_ONES)) + 0x06 * GJ_ONES) & (0xF0 * GJ_ONES));
            if (bad) return i + (gj_ctz64(bad) >> 3);
            i += 8;
        }
        while (i < n && gj_isdigit(p[i])) i++;
        return i;
    }

    /* The number at p[i] ('-' or a digit): its end, or -1.  After the integer part
       only '.', 'e' or 'E' continue it; what follows is checked by the caller. */
    static inline Py_ssize_t gj_valid_num(const unsigned char* p, Py_ssize_t i, Py_ssize_t n) {
        if (p[i] == '-') {
            i++;
            if (i == n || !gj_isdigit(p[i])) return -1;
        }
        if (p[i] == '0') i++;
        else i = gj_digits(p, i + 1, n);
        if (i < n && p[i] == '.') {
            i++;
            if (i == n || !gj_isdigit(p[i])) return -1;
            i = gj_digits(p, i + 1, n);
        }
        if (i < n && (p[i] | 0x20) == 'e') {
            i++;
            if (i < n && (p[i] == '+' || p[i] == '-')) i++;
            if (i == n || !gj_isdigit(p[i])) return -1;
            i = gj_digits(p, i + 1, n);
        }
        return i;
    }

    static const signed char gj_hex_tab[256] = {
        ['0'] = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
        ['A'] = 1, 1, 1, 1, 1, 1, ['a'] = 1, 1, 1, 1, 1, 1};
    static const unsigned char gj_esc_tab[256] = {
        ['"'] = 1, ['\\\\'] = 1, ['/'] = 1, ['b'] = 1, ['f'] = 1, ['n'] = 1,
        ['r'] = 1, ['t'] = 1};

    /* The string whose opening quote is at i - 1: the index past its closing quote,
       or -1 (a control byte, a bad escape, or the end of the document). */
    static inline Py_ssize_t gj_valid_str(const unsigned char* p, Py_ssize_t i, Py_ssize_t n) {
        unsigned char c;
        for (;;) {
            /* find the next '"', '\\' or byte < 0x20; each test flags a byte only
               when it or a lower byte matches, so the lowest flag is exact */
            for (;;) {
                if (i + 8 <= n) {
                    uint64_t x = gj_load8(p + i);
                    uint64_t q = x ^ (0x22 * GJ_ONES), b = x ^ (0x5C * GJ_ONES);
                    uint64_t m = (((q - GJ_ONES) & ~q) | ((b - GJ_ONES) & ~b)
                                  | ((x - 0x20 * GJ_ONES) & ~x)) & GJ_HIGH;
                    if (m) { i += gj_ctz64(m) >> 3; break; }
                    i += 8;
                    continue;
                }
                while (i < n && gj_str_tab[p[i]] == 0) i++;
                if (i == n) return -1;
                break;
            }
            c = p[i];
            if (c == '"') return i + 1;
            if (c < 0x20) return -1;
            i++;                               /* past the backslash */
            if (i == n) return -1;
            if (p[i] == 'u') {
                if (i + 4 >= n || !gj_hex_tab[p[i + 1]] || !gj_hex_tab[p[i + 2]]
                        || !gj_hex_tab[p[i + 3]] || !gj_hex_tab[p[i + 4]]) return -1;
                i += 5;
            } else if (gj_esc_tab[p[i]]) {
                i++;
            } else {
                return -1;
            }
        }
    }

    #if defined(__SSE2__) && defined(__GNUC__)
    #define GJ_NUM_BLOCK 1
    /* Number arrays 64 bytes at a time.  q[0] starts a number inside an array.
       Tokens of digits, '.' and '-' end at ','; the first other byte ends the range,
       and when it is ']' or whitespace it also ends the last token (nothing else
       may follow a number there, and 'e', '+' or any other byte is left to the
       byte-wise path).  Every token in range is checked at once from bit masks
       (bit k = q[k]).  Returns the index of the range's last terminator plus one
       when it is a ',' (*more = 1: a value follows), the index of the ']' or
       whitespace (*more = 0), 0 when no token ends in the block, or -1 when one
       is malformed: a token followed straight by a terminator has no other
       reading. */
    static inline Py_ssize_t gj_num_block(const unsigned char* q, int* more) {
        const __m128i c0 = _mm_set1_epi8('0'), c9 = _mm_set1_epi8(9);
        const __m128i cdot = _mm_set1_epi8('.'), ccomma = _mm_set1_epi8(',');
        const __m128i cminus = _mm_set1_epi8('-');
        uint64_t D = 0, Z = 0, P = 0, C = 0, M = 0, E, other, first, R, S, I, bad;
        int k, last;
        unsigned char t;
        for (k = 0; k < 4; k++) {
            __m128i x = _mm_loadu_si128((const __m128i*)(q + 16 * k));
            __m128i d = _mm_sub_epi8(x, c0);
            D |= (uint64_t)(unsigned)_mm_movemask_epi8(
                     _mm_cmpeq_epi8(_mm_min_epu8(d, c9), d)) << (16 * k);
            Z |= (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, c0)) << (16 * k);
            P |= (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, cdot)) << (16 * k);
            C |= (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, ccomma)) << (16 * k);
            M |= (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, cminus)) << (16 * k);
        }
        other = ~(D | P | C | M);
        E = C;                                         /* token ends */
        if (other) {
            first = other & (0 - other);
            E &= first - 1;                            /* commas before the first other */
            t = q[gj_ctz64(other)];
            /* (after a ',' the byte starts the next element, not ends a token) */
            if ((t == ']' || t == ' ' || t == '\\n' || t == '\\r' || t == '\\t')
                    && !((first >> 1) & C))
                E |= first;
        }
        if (!E) return 0;
        last = 63 - __builtin_clzll(E);
        R = last == 63 ? ~0ULL : (1ULL << (last + 1)) - 1;
        D &= R; Z &= R; P &= R; M &= R;
        S = (1 | (E << 1)) & R;                        /* token starts */
        I = (S & ~M) | (M << 1);                       /* first digit of each token */
        bad = (M & ~S)                                 /* '-' inside a token */
            | (I & ~D)                                 /* empty token, '-' alone, '.5' */
            | (((Z & I) << 1) & D)                     /* leading zero */
            | (P & ~(D << 1)) | ((P << 1) & ~D)        /* '.' between digits only */
            | (P & ~(E - P));                          /* a second '.': E - P sets each
                                 token's bits from its first '.' up to its end and
                                 clears any later '.' of that token */
        if (bad) return -1;
        *more = q[last] == ',';
        return *more ? last + 1 : last;
    }
    #endif

    #define GJ_SKIP_WS(p, i, n) \\
        while (i < n && p[i] <= ' ' && (p[i] == ' ' || p[i] == '\\n' || p[i] == '\\r' \\
                                         || p[i] == '\\t')) i++

    /* gjson.ValidBytes without recursion: the open containers are a bit stack (1 for
       an object), so nesting depth costs one bit per level. */
    static int gj_valid(const unsigned char* p, Py_ssize_t n) {
        uint64_t small[64];
        uint64_t* stack = small;
        uint64_t* grown;
        Py_ssize_t cap = 64 * 64, depth = 0, i = 0;
        int ok = 0, in_obj = 0;
        unsigned char c;
    value:
        GJ_SKIP_WS(p, i, n);
        if (i == n) goto done;
        c = p[i];
        if (c == '"') {
            i = gj_valid_str(p, i + 1, n);
            if (i < 0) goto done;
            goto after;
        }
        if (c == '-' || gj_isdigit(c)) {
            if (depth && !in_obj) goto array_numbers;
            i = gj_valid_num(p, i, n);
            if (i < 0) goto done;
            goto after;
        }
        if (c == '[' || c == '{') {
            i++;
            GJ_SKIP_WS(p, i, n);
            if (i == n) goto done;
            if (p[i] == c + 2) {               /* ']' and '}' follow their openers */
                i++;
                goto after;
            }
            if (c == '{' && p[i] != '"') goto done;
            if (depth == cap) {
                grown = (uint64_t*)malloc((size_t)(cap / 32) * sizeof(uint64_t));
                if (grown == NULL) goto done;
                memcpy(grown, stack, (size_t)(cap / 64) * sizeof(uint64_t));
                if (stack != small) free(stack);
                stack = grown;
                cap *= 2;
            }
            in_obj = c == '{';
            if (in_obj) stack[depth >> 6] |= 1ULL << (depth & 63);
            else stack[depth >> 6] &= ~(1ULL << (depth & 63));
            depth++;
            if (in_obj) goto key;
            goto value;
        }
        if (c == 't') {
            if (n - i < 4 || memcmp(p + i, "true", 4) != 0) goto done;
            i += 4;
        } else if (c == 'f') {
            if (n - i < 5 || memcmp(p + i, "false", 5) != 0) goto done;
            i += 5;
        } else if (c == 'n') {
            if (n - i < 4 || memcmp(p + i, "null", 4) != 0) goto done;
            i += 4;
        } else {
            goto done;
        }
    after:
        if (depth == 0) {
            GJ_SKIP_WS(p, i, n);
            ok = i == n;
            goto done;
        }
        GJ_SKIP_WS(p, i, n);
        if (i == n) goto done;
        c = p[i];
        if (c == ',') {
            i++;
            if (in_obj) {
                GJ_SKIP_WS(p, i, n);
                if (i == n || p[i] != '"') goto done;
                goto key;
            }
            if (i < n && (p[i] == '-' || gj_isdigit(p[i]))) goto array_numbers;
            goto value;
        }
        if (c == (in_obj ? '}' : ']')) {
            i++;
            depth--;
            if (depth) in_obj = (int)((stack[(depth - 1) >> 6] >> ((depth - 1) & 63)) & 1);
            goto after;
        }
        goto done;
    array_numbers:          /* p[i] starts a number in an array: stay while they repeat */
        for (;;) {
    #ifdef GJ_NUM_BLOCK
            if (n - i >= 64) {
                int more;
                Py_ssize_t used = gj_num_block(p + i, &more);
                if (used < 0) goto done;
                if (used) {
                    i += used;
                    if (!more) goto after;
                    if (i < n && (p[i] == '-' || gj_isdigit(p[i]))) continue;
                    goto value;
                }
            }
    #endif
            i = gj_valid_num(p, i, n);
            if (i < 0) goto done;
            if (n - i < 2 || p[i] != ',' || !(p[i + 1] == '-' || gj_isdigit(p[i + 1])))
                goto after;
            i++;
        }
    key:                                       /* p[i] is the key's opening quote */
        i = gj_valid_str(p, i + 1, n);
        if (i < 0) goto done;
        GJ_SKIP_WS(p, i, n);
        if (i == n || p[i] != ':') goto done;
        i++;
        goto value;
    done:
        if (stack != small) free(stack);
        return ok;
    }
    """
    bint gj_valid(cstr p, Py_ssize_t n) nogil


cdef bint c_valid(const char* doc, Py_ssize_t n) noexcept nogil:
    """gjson.ValidBytes(doc[:n])."""
    return gj_valid(<cstr>doc, n)
