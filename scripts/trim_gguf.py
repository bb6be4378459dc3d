#!/usr/bin/env python3
"""Writes a copy of a Llama GGUF that keeps only its first N blocks.

    trim_gguf.py IN.gguf OUT.gguf N

Files copied to the GPU machine for scripts/gpu-check.sh are capped at
64 MiB, and the default model (98 MB) does not fit; its first layers with
the real embedding, quantized weights and tokenizer do, and are as good a
subject for comparing backends (CUDA vs CPU greedy tokens). The metadata
is copied byte for byte except `<arch>.block_count`; tensors of blocks >= N
are dropped and the rest re-laid out at the file's alignment. Standard
library only.
"""
import re
import struct
import sys

# GGUF value types: fixed sizes, 8 = string, 9 = array.
_FIXED = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


class Reader:
    def __init__(self, data):
        self.d, self.p = data, 0

    def take(self, n):
        if self.p + n > len(self.d):
            raise ValueError("truncated GGUF")
        b = self.d[self.p:self.p + n]
        self.p += n
        return b

    def u32(self):
        return struct.unpack("<I", self.take(4))[0]

    def u64(self):
        return struct.unpack("<Q", self.take(8))[0]

    def string(self):
        return self.take(self.u64()).decode("utf-8")

    def skip_value(self, vtype):
        if vtype in _FIXED:
            self.take(_FIXED[vtype])
        elif vtype == 8:
            self.take(self.u64())
        elif vtype == 9:
            etype, count = self.u32(), self.u64()
            for _ in range(count):
                self.skip_value(etype)
        else:
            raise ValueError(f"unknown GGUF value type {vtype}")


def main():
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    src, dst, keep = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open(src, "rb") as f:
        data = f.read()
    r = Reader(data)
    if r.take(4) != b"GGUF":
        raise ValueError("not a GGUF file")
    version = r.u32()
    n_tensors, n_kv = r.u64(), r.u64()
    kv_start = r.p
    alignment = 32
    block_count_at = None  # Offset of the u32 value of *.block_count.
    for _ in range(n_kv):
        key = r.string()
        vtype = r.u32()
        if key.endswith(".block_count") and vtype == 4:
            block_count_at = r.p
        if key == "general.alignment" and vtype == 4:
            alignment = struct.unpack("<I", data[r.p:r.p + 4])[0]
        r.skip_value(vtype)
    kv = bytearray(data[kv_start:r.p])
    if block_count_at is None:
        raise ValueError("no <arch>.block_count")
    old_blocks = struct.unpack("<I", data[block_count_at:block_count_at + 4])[0]
    if not 0 < keep <= old_blocks:
        raise ValueError(f"keep {keep} of {old_blocks} blocks?")
    struct.pack_into("<I", kv, block_count_at - kv_start, keep)
    tensors = []
    for _ in range(n_tensors):
        name = r.string()
        n_dims = r.u32()
        dims = [r.u64() for _ in range(n_dims)]
        ttype, offset = r.u32(), r.u64()
        tensors.append((name, dims, ttype, offset))
    data_start = (r.p + alignment - 1) // alignment * alignment
    # Sizes from the offsets: each tensor ends where the next one starts
    # (aligned), the last at the end of the file.
    order = sorted(tensors, key=lambda t: t[3])
    ends = {}
    for i, t in enumerate(order):
        ends[t[0]] = (order[i + 1][3] if i + 1 < len(order)
                      else len(data) - data_start)
    kept = [t for t in tensors
            if not (m := re.match(r"blk\.(\d+)\.", t[0])) or int(m[1]) < keep]
    out = bytearray(b"GGUF" + struct.pack("<IQQ", version, len(kept), n_kv))
    out += kv
    blobs, offset = [], 0
    for name, dims, ttype, old in kept:
        blob = data[data_start + old:data_start + ends[name]]
        nb = name.encode("utf-8")
        out += struct.pack("<Q", len(nb)) + nb + struct.pack("<I", len(dims))
        out += b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", ttype, offset)
        blobs.append(blob)
        offset += (len(blob) + alignment - 1) // alignment * alignment
    out += b"\0" * ((-len(out)) % alignment)
    for blob in blobs:
        out += blob + b"\0" * ((-len(blob)) % alignment)
    with open(dst, "wb") as f:
        f.write(out)
    print(f"trim_gguf: {len(kept)}/{n_tensors} tensors, {keep}/{old_blocks} "
          f"blocks, {len(out) / 1e6:.1f} MB -> {dst}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
