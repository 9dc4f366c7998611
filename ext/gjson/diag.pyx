# Included by _gjson.pyx: a lint for GJSON paths.  gjson itself never rejects a
# path (a malformed one just matches nothing), so `ige validate` uses this to warn
# about conditions that can never match.

_MODIFIERS = frozenset(("pretty", "ugly", "reverse", "this", "flatten", "join", "valid",
                        "keys", "values", "tostr", "fromstr", "group", "dig"))
_OPS = ("==", "!=", "<=", ">=", "!%", "=", "<", ">", "%")
_CLOSERS = {"(": ")", "[": "]", "{": "}"}


class PathProblem:
    """A suspicious spot in a path: 0-based ``position`` and a ``message``."""

    __slots__ = ("position", "message")

    def __init__(self, position, message):
        self.position = position
        self.message = message

    def __eq__(self, other):
        return (isinstance(other, PathProblem) and self.position == other.position
                and self.message == other.message)

    def __hash__(self):
        return hash((self.position, self.message))

    def __repr__(self):
        return f"PathProblem({self.position}, {self.message!r})"

    def __str__(self):
        return f"at {self.position}: {self.message}"


def _check_query(str path, int start, int end, list problems):
    """start is at '(' or '[' after '#'; end at its closer: check the operator."""
    cdef int i = start + 1, depth = 0
    cdef str inner
    while i < end:
        c = path[i]
        if c == "\\":
            i += 2
            continue
        if c == '"':
            i += 1
            while i < end and path[i] != '"':
                i += 2 if path[i] == "\\" else 1
        elif c in "([":
            depth += 1
        elif c in ")]":
            depth -= 1
        elif depth == 0 and c in "!=<>%":
            for op in _OPS:
                if path.startswith(op, i):
                    inner = path[i + len(op):end].strip()
                    if not inner:
                        problems.append(PathProblem(
                            i, f"query operator '{op}' has no value to compare with"))
                    return
            problems.append(PathProblem(i, f"unknown query operator at '{c}'"))
            return
        i += 1


def diagnose(str path):
    """Suspicious syntax in a GJSON path, as a list of PathProblem."""
    cdef list problems = []
    cdef list stack = []     # (opener, position)
    cdef int i = 0, n = len(path), j
    if n == 0:
        return [PathProblem(0, "empty path")]
    while i < n:
        c = path[i]
        if c == "\\":
            if i == n - 1:
                problems.append(PathProblem(i, "dangling escape '\\' at the end"))
            i += 2
            continue
        if c == '"' and (stack or (i > 0 and path[i - 1] == "!")):
            j = i + 1
            while j < n and path[j] != '"':
                j += 2 if path[j] == "\\" else 1
            if j >= n:
                problems.append(PathProblem(i, "unterminated string"))
                break
            i = j + 1
            continue
        if c == "@" and (i == 0 or path[i - 1] in ".|[{,:"):
            j = i + 1
            while j < n and path[j] not in ".|:,]})[{(":
                j += 1
            name = path[i + 1:j]
            if name not in _MODIFIERS:
                problems.append(PathProblem(i, f"unknown modifier '@{name}'"))
        elif c in "([{":
            stack.append((c, i))
        elif c in ")]}":
            if not stack:
                problems.append(PathProblem(i, f"unbalanced '{c}' without an opener"))
            else:
                opener, at = stack.pop()
                if _CLOSERS[opener] != c:
                    problems.append(PathProblem(
                        i, f"'{c}' closes '{opener}' opened at {at}"))
                elif at > 0 and path[at - 1] == "#" and opener in "([":
                    _check_query(path, at, i, problems)
        elif c in ".|" and i == n - 1 and not stack:
            problems.append(PathProblem(i, f"path ends with '{c}'"))
        i += 1
    for opener, at in stack:
        problems.append(PathProblem(at, f"unbalanced '{opener}' is never closed"))
    problems.sort(key=lambda p: p.position)
    return problems
