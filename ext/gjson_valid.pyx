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
            /* arrays of numbers: stay in this loop while "<number>," repeats */
            while (i < n && (p[i] == '-' || gj_isdigit(p[i]))) {
                i = gj_valid_num(p, i, n);
                if (i < 0) goto done;
                if (i + 1 < n && p[i] == ',') i++;
                else goto after;
            }
            goto value;
        }
        if (c == (in_obj ? '}' : ']')) {
            i++;
            depth--;
            if (depth) in_obj = (int)((stack[(depth - 1) >> 6] >> ((depth - 1) & 63)) & 1);
            goto after;
        }
        goto done;
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
