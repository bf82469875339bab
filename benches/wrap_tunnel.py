#!/usr/bin/env python3
"""Wraps every Ethernet frame of a classic pcap file in a tunnel, as a mirror target would
receive it: VXLAN (VNI 1, UDP to 4789 with a per-flow source port, as VTEPs choose them) or
ERSPAN type II (GRE with a sequence number, session 1). Used by benches/tunnels.sh.

    benches/wrap_tunnel.py vxlan|erspan IN.pcap OUT.pcap
"""
import struct
import sys
import zlib


def ipv4(src, dst, proto, payload, ident):
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident & 0xFFFF, 0, 64,
                         proto, 0, bytes(src), bytes(dst))
    total = sum(struct.unpack("!10H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    header = header[:10] + struct.pack("!H", ~total & 0xFFFF) + header[12:]
    return header + payload


def wrap(kind, frame, n):
    if kind == "vxlan":
        # A VTEP picks the source port from a hash of the inner addresses and ports.
        sport = 49152 + zlib.crc32(frame[26:38]) % 16384
        body = struct.pack("!II", 0x08000000, 1 << 8) + frame
        udp = struct.pack("!HHHH", sport, 4789, 8 + len(body), 0) + body
        packet = ipv4((10, 99, 0, 1), (10, 99, 0, 2), 17, udp, n)
    else:
        erspan = struct.pack("!HHI", 0x1000, 0x0001, 0) + frame
        gre = struct.pack("!HHI", 0x1000, 0x88BE, n & 0xFFFFFFFF) + erspan
        packet = ipv4((10, 99, 0, 1), (10, 99, 0, 2), 47, gre, n)
    return b"\x02\x00\x00\x00\x99\x02\x02\x00\x00\x00\x99\x01\x08\x00" + packet


def main():
    kind, src, dst = sys.argv[1:4]
    assert kind in ("vxlan", "erspan"), kind
    with open(src, "rb") as f:
        data = f.read()
    magic = data[:4]
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    assert linktype == 1, "Ethernet captures only"
    out = [data[:16] + struct.pack(endian + "I", 65535) + data[20:24]]
    at, n = 24, 0
    while at + 16 <= len(data):
        sec, frac, caplen, origlen = struct.unpack(endian + "IIII", data[at:at + 16])
        frame = data[at + 16:at + 16 + caplen]
        at += 16 + caplen
        wrapped = wrap(kind, frame, n)
        extra = len(wrapped) - len(frame)
        out.append(struct.pack(endian + "IIII", sec, frac, len(wrapped), origlen + extra))
        out.append(wrapped)
        n += 1
    with open(dst, "wb") as f:
        f.write(b"".join(out))


if __name__ == "__main__":
    main()
