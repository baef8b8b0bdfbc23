"""A strict reader of the marshal subset the spec allows, to check the encoders follow it."""

import struct
from typing import Any, Tuple


def read(data: bytes, allowed: str) -> Any:
    """Decode data using only the marshal codes in allowed; fail on anything else."""
    value, pos = _read(memoryview(data), 0, allowed)
    if pos != len(data):
        raise ValueError("%d trailing bytes" % (len(data) - pos))
    return value


def _read(data: memoryview, pos: int, allowed: str) -> Tuple[Any, int]:
    code = chr(data[pos])
    if data[pos] & 0x80:
        raise ValueError("FLAG_REF set at offset %d" % pos)
    if code not in allowed:
        raise ValueError("marshal code %r at offset %d is not allowed" % (code, pos))
    pos += 1
    if code == "u":
        (n,) = struct.unpack_from("<I", data, pos)
        return bytes(data[pos + 4:pos + 4 + n]).decode("utf-8"), pos + 4 + n
    if code == "s":
        (n,) = struct.unpack_from("<I", data, pos)
        return bytes(data[pos + 4:pos + 4 + n]), pos + 4 + n
    if code == "i":
        return struct.unpack_from("<i", data, pos)[0], pos + 4
    if code == "N":
        return None, pos
    if code in "([":
        (n,) = struct.unpack_from("<I", data, pos)
        pos += 4
        items = []
        for _ in range(n):
            item, pos = _read(data, pos, allowed)
            items.append(item)
        return (tuple(items) if code == "(" else items), pos
    if code == "{":
        d = {}
        while chr(data[pos]) != "0":
            k, pos = _read(data, pos, "u")
            v, pos = _read(data, pos, allowed.replace("{", "") if "s" in allowed else "u")
            d[k] = v
        return d, pos + 1
    raise ValueError(code)
