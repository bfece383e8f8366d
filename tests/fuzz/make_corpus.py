#!/usr/bin/env python3
"""Writes the seed corpus in tests/fuzz/corpus/ (checked in; run again only to change it).

kdcom_session: KDCOM byte streams as a target sends them (state change, replies, DbgPrint,
control packets, noise). kdnet_datagram: datagrams from the KDNET capture in tests/data.
pcap_reader: the head of that capture and of the pcapng one, classic and gzipped. pe_exports:
a minimal PE32+ image with an export directory."""
import gzip
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, '..', 'data', 'kdnet')
OUT = os.path.join(HERE, 'corpus')


def put(kind, name, data):
    os.makedirs(os.path.join(OUT, kind), exist_ok=True)
    with open(os.path.join(OUT, kind, name), 'wb') as f:
        f.write(data)


def kdcom(ptype, pid, payload=b'', control=False):
    if control:
        return struct.pack('<IHHII', 0x69696969, ptype, 0, pid, 0)
    return struct.pack('<IHHII', 0x30303030, ptype, len(payload), pid,
                       sum(payload) & 0xffffffff) + payload + b'\xaa'


def state_change(pc=0xfffff80000601012):
    body = struct.pack('<IHHIIQQ', 0x3030, 6, 0, 1, 0, 0xfffff80000700000, pc)
    rec = struct.pack('<IIQQII', 0x80000003, 0, 0, pc, 1, 0) + struct.pack('<15Q', *([0] * 15))
    body += rec + struct.pack('<I', 1)
    body = body.ljust(0xc0, b'\0')
    body += struct.pack('<QQHH', 0xffff0ff0, 0x400, 0, 0) + b'\0' * (0xf0 - 0xc0 - 20)
    return body[:0xf0].ljust(0xf0, b'\0')


def manipulate(api, extra=b''):
    return struct.pack('<IHHI', api, 6, 0, 0).ljust(56, b'\0') + extra


def debug_print(text):
    return struct.pack('<IHHI', 0x3230, 6, 0, len(text)).ljust(16, b'\0') + text


def kdcom_seeds():
    sync = 0x80800800
    put('kdcom_session', 'stop', b'\x10' + kdcom(7, sync, state_change()))
    put('kdcom_session', 'reply', b'\x03' + kdcom(4, 0x80800000, control=True) +
        kdcom(2, 0x80800000, manipulate(0x3146)))
    put('kdcom_session', 'read_reply', b'\x40' + kdcom(4, 0x80800000, control=True) +
        kdcom(2, 0x80800001, manipulate(0x3130, bytes(range(256)))))
    put('kdcom_session', 'dbgprint', b'\x05' + kdcom(3, sync, debug_print(b'kdtest: tick 1\n')))
    put('kdcom_session', 'control', b'\x01' + kdcom(6, sync, control=True) +
        kdcom(5, 0, control=True) + kdcom(4, 0x80800001, control=True))
    noisy = bytearray(kdcom(7, sync, state_change()))
    noisy[40] ^= 0x04
    noisy[60] ^= 0x04
    put('kdcom_session', 'noise', b'\x07' + b'\x00\x13b00' + bytes(noisy) + kdcom(7, sync, state_change())[:100])
    short = state_change()[:0x40]
    put('kdcom_session', 'truncated_stop', b'\x20' + kdcom(7, sync, short) * 3)


def pcap_packets(raw):
    magic = struct.unpack('<I', raw[:4])[0]
    assert magic == 0xa1b2c3d4
    off = 24
    while off + 16 <= len(raw):
        _, _, incl, _ = struct.unpack('<IIII', raw[off:off + 16])
        yield raw[off + 16:off + 16 + incl]
        off += 16 + incl


def kdnet_seeds():
    raw = open(os.path.join(DATA, 'aeroctf2021-kek.pcap'), 'rb').read()
    n = 0
    for frame in pcap_packets(raw):
        i = frame.find(b'MDBG')
        if i < 0:
            continue
        put('kdnet_datagram', 'datagram%02d' % n, frame[i:])
        n += 1
        if n == 6:
            break
    put('kdnet_datagram', 'two_split', b'MDBG\x02\x01' + b'\0' * 42 + b'\xff\xff' + b'MDBG\x02\x00' + b'\x11' * 58)
    put('kdnet_datagram', 'fields', bytes([5, 1, 0, 0, 0, 0, 0, 0, 0, 1]) + b'\x30' * 4 + b'\x02\x00')


def pcap_seeds():
    raw = open(os.path.join(DATA, 'aeroctf2021-kek.pcap'), 'rb').read()
    head = raw[:24]
    off = 24
    for _ in range(4):
        incl = struct.unpack('<I', raw[off + 8:off + 12])[0]
        off += 16 + incl
    put('pcap_reader', 'classic.pcap', raw[:off])
    put('pcap_reader', 'classic_cut.pcap', raw[:off - 7])
    put('pcap_reader', 'classic.pcap.gz', gzip.compress(raw[:off], mtime=0))
    ng = gzip.decompress(open(os.path.join(DATA, 'windbg-uncut.pcapng.gz'), 'rb').read())
    put('pcap_reader', 'head.pcapng', ng[:3000])
    put('pcap_reader', 'header_only.pcap', head)


def pe_seed():
    # DOS header, PE header, one section, export directory with two names.
    img = bytearray(0x600)
    img[0:2] = b'MZ'
    struct.pack_into('<I', img, 0x3c, 0x80)
    img[0x80:0x84] = b'PE\0\0'
    struct.pack_into('<HHIIIHH', img, 0x84, 0x8664, 1, 0, 0, 0, 0xf0, 0x22)
    opt = 0x98
    struct.pack_into('<H', img, opt, 0x20b)
    struct.pack_into('<I', img, opt + 56, 0x1000)  # SizeOfImage
    struct.pack_into('<I', img, opt + 108, 16)     # NumberOfRvaAndSizes
    struct.pack_into('<II', img, opt + 112, 0x200, 0x100)  # export directory
    exp = 0x200
    struct.pack_into('<IIHHIIIIIII', img, exp, 0, 0, 0, 0, 0x2c0, 1, 2, 2, 0x280, 0x288, 0x290)
    struct.pack_into('<II', img, 0x280, 0x1010, 0x1020)  # functions
    struct.pack_into('<II', img, 0x288, 0x2d0, 0x2e0)    # names
    struct.pack_into('<HH', img, 0x290, 0, 1)            # ordinals
    img[0x2c0:0x2c9] = b'fuzz.sys\0'
    img[0x2d0:0x2db] = b'FuzzAlpha\0\0'
    img[0x2e0:0x2ea] = b'FuzzBeta\0\0'
    put('pe_exports', 'two_exports.sys', bytes(img))
    put('pe_exports', 'dos_only', bytes(img[:0x40]))


if __name__ == '__main__':
    kdcom_seeds()
    kdnet_seeds()
    pcap_seeds()
    pe_seed()
