"""Compact, versioned binary encoding of detector state.

A serialized detector is::

    b"AD" | format version (1 byte) | len(name) (1 byte) | name (ascii)
          | class state version (1 byte) | payload

The payload is a positional sequence of tagged values (one tag byte each).
Field names are *not* stored: each detector class lists its state fields in a
fixed order (``_STATE_FIELDS``) and bumps ``STATE_VERSION`` whenever that list
changes, so old blobs are rejected instead of being misread.

Supported values: ``None``, ``bool``, ``int`` (zig-zag varint), ``float``
(IEEE double), ``array('f')`` / ``array('d')`` (raw little-endian), ``bytes``,
``str`` and ``list``/``tuple`` of those. Profiles are kept in memory as
``array('f')`` so that the float32 rounding happens on every update, not only
when serialising: a restored detector is then bit-identical to the original.

>>> from array import array
>>> blob = encode_values([1, -2.5, None, True, array('f', [1.0, 2.0]), [3, 'x']])
>>> decode_values(blob)
[1, -2.5, None, True, array('f', [1.0, 2.0]), [3, 'x']]
"""

from __future__ import annotations

import struct
import sys
from array import array

MAGIC = b"AD"
FORMAT_VERSION = 1

_T_NONE, _T_FALSE, _T_TRUE, _T_INT, _T_FLOAT, _T_F32, _T_F64, _T_BYTES, _T_STR, _T_LIST = range(10)
_DOUBLE = struct.Struct("<d")
_BIG_ENDIAN = sys.byteorder == "big"


def _write_varint(out: bytearray, n: int) -> None:
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    shift = 0
    n = 0
    while True:
        b = buf[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            return n, pos
        shift += 7


_TAG_DOUBLE = struct.Struct("<Bd")   # a _T_FLOAT tag and its value in one pack


def _encode(out: bytearray, v) -> None:
    # Exact-type fast paths first (the scorer serialises a ~4 KB ensemble every
    # window, ~80 values, mostly floats); bytes identical to the generic chain below.
    t = type(v)
    if t is float:
        out += _TAG_DOUBLE.pack(_T_FLOAT, v)
        return
    if t is list or t is tuple:
        out.append(_T_LIST)
        n = len(v)
        if n < 0x80:
            out.append(n)
        else:
            _write_varint(out, n)
        for item in v:
            if type(item) is float:
                out += _TAG_DOUBLE.pack(_T_FLOAT, item)
            else:
                _encode(out, item)
        return
    if t is int:
        z = (v << 1) if v >= 0 else ((-v << 1) - 1)
        if z < 0x80:
            out += bytes((_T_INT, z))
        else:
            out.append(_T_INT)
            _write_varint(out, z)
        return
    _encode_generic(out, v)


def _encode_generic(out: bytearray, v) -> None:
    if v is None:
        out.append(_T_NONE)
    elif v is True:
        out.append(_T_TRUE)
    elif v is False:
        out.append(_T_FALSE)
    elif isinstance(v, int):
        out.append(_T_INT)
        _write_varint(out, (v << 1) if v >= 0 else ((-v << 1) - 1))
    elif isinstance(v, float):
        out.append(_T_FLOAT)
        out += _DOUBLE.pack(v)
    elif isinstance(v, array):
        if v.typecode not in "fd":
            raise TypeError(f"unsupported array typecode {v.typecode!r}")
        out.append(_T_F32 if v.typecode == "f" else _T_F64)
        _write_varint(out, len(v))
        if _BIG_ENDIAN:  # pragma: no cover - keep blobs little-endian everywhere
            v = array(v.typecode, v)
            v.byteswap()
        out += v.tobytes()
    elif isinstance(v, (bytes, bytearray)):
        out.append(_T_BYTES)
        _write_varint(out, len(v))
        out += v
    elif isinstance(v, str):
        raw = v.encode("utf-8")
        out.append(_T_STR)
        _write_varint(out, len(raw))
        out += raw
    elif isinstance(v, (list, tuple)):
        out.append(_T_LIST)
        _write_varint(out, len(v))
        for item in v:
            _encode(out, item)
    else:
        raise TypeError(f"cannot serialise {type(v).__name__}")


_unpack_double = _DOUBLE.unpack_from


def _decode(buf: bytes, pos: int):
    tag = buf[pos]
    pos += 1
    if tag == _T_FLOAT:
        return _unpack_double(buf, pos)[0], pos + 8
    if tag == _T_NONE:
        return None, pos
    if tag == _T_TRUE:
        return True, pos
    if tag == _T_FALSE:
        return False, pos
    if tag == _T_INT:
        z, pos = _read_varint(buf, pos)
        return ((z >> 1) if not z & 1 else -((z + 1) >> 1)), pos
    if tag in (_T_F32, _T_F64):
        n, pos = _read_varint(buf, pos)
        code = "f" if tag == _T_F32 else "d"
        size = 4 if code == "f" else 8
        a = array(code)
        a.frombytes(buf[pos:pos + n * size])
        if _BIG_ENDIAN:  # pragma: no cover
            a.byteswap()
        return a, pos + n * size
    if tag == _T_BYTES:
        n, pos = _read_varint(buf, pos)
        return bytes(buf[pos:pos + n]), pos + n
    if tag == _T_STR:
        n, pos = _read_varint(buf, pos)
        return bytes(buf[pos:pos + n]).decode("utf-8"), pos + n
    if tag == _T_LIST:
        n, pos = _read_varint(buf, pos)
        items = []
        append = items.append
        for _ in range(n):
            if buf[pos] == _T_FLOAT:
                append(_unpack_double(buf, pos + 1)[0])
                pos += 9
            else:
                item, pos = _decode(buf, pos)
                append(item)
        return items, pos
    raise ValueError(f"corrupt detector state: unknown tag {tag}")


def encode_values(values) -> bytes:
    """Encode a sequence of supported values (see module docstring)."""
    out = bytearray()
    _write_varint(out, len(values))
    for v in values:
        _encode(out, v)
    return bytes(out)


def decode_values(buf: bytes) -> list:
    """Inverse of :func:`encode_values`."""
    n, pos = _read_varint(buf, 0)
    values = []
    for _ in range(n):
        v, pos = _decode(buf, pos)
        values.append(v)
    if pos != len(buf):
        raise ValueError("corrupt detector state: trailing bytes")
    return values


def pack_header(name: str, state_version: int) -> bytes:
    raw = name.encode("ascii")
    if len(raw) > 255:
        raise ValueError("detector name too long")
    return MAGIC + bytes((FORMAT_VERSION, len(raw))) + raw + bytes((state_version,))


def unpack_header(blob: bytes) -> tuple[str, int, int]:
    """Return ``(name, state_version, payload_offset)`` of a serialized detector."""
    if len(blob) < 5 or blob[:2] != MAGIC:
        raise ValueError("not a serialized detector (bad magic)")
    if blob[2] != FORMAT_VERSION:
        raise ValueError(f"unsupported detector format version {blob[2]}")
    n = blob[3]
    name = bytes(blob[4:4 + n]).decode("ascii")
    return name, blob[4 + n], 5 + n
