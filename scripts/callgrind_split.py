#!/usr/bin/env python3
"""callgrind_split.py FILE COUNT: a callgrind profile's instructions per operation, split by
where they run (ring by operation, the rest of rustls, margay, the allocator, libc, other).

Classifies each function's exclusive cost by its symbol and source file. Prints
`category<TAB>instructions per operation` lines, the total last; with a third argument N, first
the N costliest functions as `#` lines.
"""
import os
import re
import sys

# First match wins: (category, pattern on "file:function [object]").
RULES = [
    ("ring X25519", r"x25519|curve25519|fe_loose|fe_mul|fe_sq|ge_madd|ge_p|ge_sub|ge_add|fiat_25519|table_select"),
    ("ring P-256 (ECDSA sign)", r"nistz256|p256|ec/suite_b|ecdsa|limbs|bn_mul_mont|LIMBS|/ec/|ec::"),
    ("ring AES-GCM", r"aes|gcm|ghash|gfmul|aead|chacha|poly1305"),
    ("ring SHA-2/HMAC/HKDF", r"sha256|sha512|sha2|digest|hmac|hkdf"),
    ("ring other", r"ring-0\.|ring::|ring_core"),
    ("rustls", r"rustls|webpki"),
    ("allocator", r"malloc|free|realloc|calloc|memalign|arena\.c|__rust_alloc|__rust_dealloc|__rust_realloc|alloc::alloc"),
    ("libc (memcpy, syscall stubs, ...)", r"libc\.so|ld-linux"),
    # This repository's own sources, wherever it is checked out, and margay's symbols.
    ("margay", re.escape(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src", "")) + "|margay::"),
]
ORDER = [c for c, _ in RULES] + ["other (std, mio, httparse, ...)"]


def exclusive_costs(path):
    """Exclusive Ir per (object, file, function), read straight from callgrind's format (a
    call's cost line, right after `calls=`, is the callee's inclusive cost and is skipped)."""
    names = {"ob": {}, "fl": {}, "fn": {}}
    ob = fl = fn = ""
    costs = {}
    program = 0
    skip_next = False
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            if line[0].isdigit() or line[0] in "+-*":
                if skip_next:
                    skip_next = False
                    continue
                parts = line.split()
                if len(parts) >= 2:
                    ir = int(parts[1])
                    key = (ob, fl, fn)
                    costs[key] = costs.get(key, 0) + ir
                continue
            key, _, value = line.partition("=")
            if key == "calls":
                skip_next = True
                continue
            kind = {"ob": "ob", "cob": "ob", "fl": "fl", "fi": "fl", "fe": "fl",
                    "cfi": "fl", "cfl": "fl", "fn": "fn", "cfn": "fn"}.get(key)
            if kind is None:
                if key == "summary" or key == "totals":
                    program = max(program, int(value.split()[0]))
                continue
            m = re.match(r"\((\d+)\)(?: (.*))?", value)
            if m:
                name = m.group(2)
                if name is not None:
                    names[kind][m.group(1)] = name
                else:
                    name = names[kind].get(m.group(1), "?")
            else:
                name = value
            # Only the current context's own keys change it; cfn/cob/cfl name a callee.
            if key == "ob":
                ob = name
            elif key in ("fl", "fi", "fe"):
                fl = name
            elif key == "fn":
                fn = name
    return costs, program


def main() -> None:
    path, count = sys.argv[1], float(sys.argv[2])
    costs, program = exclusive_costs(path)
    totals = {c: 0 for c in ORDER}
    for (ob, fl, fn), ir in costs.items():
        name = f"{fl}:{fn} [{ob}]"
        for category, pattern in RULES:
            if re.search(pattern, name):
                totals[category] += ir
                break
        else:
            totals[ORDER[-1]] += ir
    if len(sys.argv) > 3:
        for (ob, fl, fn), ir in sorted(costs.items(), key=lambda kv: -kv[1])[: int(sys.argv[3])]:
            print(f"# {ir / count:10.0f} {fn} [{fl.rsplit('/', 1)[-1]}]")
    for category in ORDER:
        print(f"{category}\t{totals[category] / count:.0f}")
    print(f"total\t{(program or sum(totals.values())) / count:.0f}")


if __name__ == "__main__":
    main()
