"""Addresses of exported functions in another process, from its maps and the ELF files mapped.

Reads only the dynamic symbol table (what ``dlsym`` sees) of 64-bit little-endian ELF files, which
is all the injection routes need: ``Py_AddPendingCall``, ``PyRun_SimpleString`` and ``mmap``.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Iterable

from loopscope.attach._root import Mapping, mapped_file, mappings

_SHT_DYNSYM = 11
_ET_DYN = 3


def exported(path: str, names: Iterable[str]) -> dict[str, int]:
    """{name: st_value} for the ``names`` that ``path`` defines in its dynamic symbol table,
    and "__base_is_load_address__" = 1 when the values are relative to its load address."""
    wanted = set(names)
    # Mapped, not read: libpython is tens of MiB, and only its headers and symbols are looked at.
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        return _exported(data, wanted)


def _exported(data: mmap.mmap, wanted: set[str]) -> dict[str, int]:
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return {}
    (e_type,) = struct.unpack_from("<H", data, 16)
    (e_shoff,) = struct.unpack_from("<Q", data, 0x28)
    e_shentsize, e_shnum = struct.unpack_from("<HH", data, 0x3A)
    found: dict[str, int] = {}
    sections = [
        struct.unpack_from("<IIQQQQIIQQ", data, e_shoff + i * e_shentsize) for i in range(e_shnum)
    ]
    for _name, sh_type, _flags, _addr, offset, size, link, _info, _align, entsize in sections:
        if sh_type != _SHT_DYNSYM or not entsize:
            continue
        strtab_offset = sections[link][4]
        for at in range(offset, offset + size, entsize):
            st_name, st_info, _other, st_shndx, st_value = struct.unpack_from("<IBBHQ", data, at)
            if not st_value or not st_shndx or (st_info & 0xF) != 2:  # defined functions
                continue
            end = data.find(b"\0", strtab_offset + st_name)
            if end < 0:
                raise ValueError("a symbol name runs past the end of the file")
            name = data[strtab_offset + st_name : end].decode(errors="replace")
            # versioned libc names come once; the first definition wins
            if name in wanted and name not in found:
                found[name] = st_value
    if found and e_type == _ET_DYN:
        found["__base_is_load_address__"] = 1
    return found


def resolve(pid: int, names: Iterable[str]) -> dict[str, int]:
    """Absolute addresses in process ``pid`` of the exported functions ``names`` (those found).

    Looks in every file-backed mapping, in load order, as the dynamic linker would. The files are
    the target's own, read through `_root.mapped_file` (a container's libc is not the host's)."""
    wanted = list(names)
    first: dict[str, Mapping] = {}
    for mapping in mappings(pid):
        first.setdefault(mapping.path, mapping)
    out: dict[str, int] = {}
    for mapping in first.values():
        missing = [n for n in wanted if n not in out]
        if not missing:
            break
        readable = mapped_file(pid, mapping)
        if readable is None:
            continue
        try:
            symbols = exported(readable, missing)
        except (OSError, struct.error, IndexError, ValueError):
            continue
        relative = symbols.pop("__base_is_load_address__", 0)
        base = mapping.start - mapping.offset
        for name, value in symbols.items():
            out[name] = base + value if relative else value
    return out
