// KDNET crypto against real captures: key parsing, HMAC and data keys, every golden datagram
// decrypted and re-encrypted byte for byte, and the KD frames inside them.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "protocol/dbgkd_structs.h"
#include "transport/KdcomCodec.h"
#include "transport/KdnetCrypto.h"

#include <doctest/doctest.h>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

using namespace kdcart;
using namespace kdcart::transport;
namespace proto = kdcart::protocol;

namespace {

const std::string kVectors = std::string(KDCART_TEST_DATA_DIR) + "/kdnet/";

std::vector<uint8_t> unhex(std::string_view s) {
    std::vector<uint8_t> out;
    auto nib = [](char c) -> int {
        if (c >= '0' && c <= '9') {
            return c - '0';
        }
        if (c >= 'a' && c <= 'f') {
            return c - 'a' + 10;
        }
        if (c >= 'A' && c <= 'F') {
            return c - 'A' + 10;
        }
        return -1;
    };
    int hi = -1;
    for (char c : s) {
        const int v = nib(c);
        if (v < 0) {
            continue; // spaces inside hex dumps
        }
        if (hi < 0) {
            hi = v;
        } else {
            out.push_back(static_cast<uint8_t>(hi << 4 | v));
            hi = -1;
        }
    }
    return out;
}

std::string trim(std::string s) {
    while (!s.empty() && (s.back() == ' ' || s.back() == '\r')) {
        s.pop_back();
    }
    size_t i = 0;
    while (i < s.size() && s[i] == ' ') {
        ++i;
    }
    return s.substr(i);
}

struct GoldenFrame {
    std::string title;
    std::vector<uint8_t> wire;
    std::vector<uint8_t> plain;
};

struct GoldenFile {
    std::vector<std::pair<std::string, std::string>> values; // "control key (8.8.8.8)" -> hex
    std::vector<GoldenFrame> frames;

    std::vector<uint8_t> value(std::string_view prefix) const {
        for (const auto& [k, v] : values) {
            if (k.rfind(prefix, 0) == 0) {
                return unhex(v);
            }
        }
        return {};
    }
    const GoldenFrame* frame(std::string_view title_part) const {
        for (const auto& f : frames) {
            if (f.title.find(title_part) != std::string::npos) {
                return &f;
            }
        }
        return nullptr;
    }
};

GoldenFile read_golden(const std::string& name) {
    std::ifstream in(kVectors + name);
    REQUIRE_MESSAGE(in.good(), "missing vector file " << name);
    GoldenFile g;
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("### ", 0) == 0) {
            g.frames.push_back(GoldenFrame{line.substr(4), {}, {}});
            continue;
        }
        const auto colon = line.find(':');
        if (colon == std::string::npos) {
            continue;
        }
        const std::string key = trim(line.substr(0, colon));
        const std::string val = trim(line.substr(colon + 1));
        if (key == "wire" && !g.frames.empty()) {
            g.frames.back().wire = unhex(val);
        } else if (key == "plain" && !g.frames.empty()) {
            g.frames.back().plain = unhex(val);
        } else {
            g.values.emplace_back(key, val);
        }
    }
    return g;
}

KdnetKey to_key(const std::vector<uint8_t>& v) {
    REQUIRE(v.size() == 32);
    KdnetKey k{};
    std::copy(v.begin(), v.end(), k.begin());
    return k;
}

uint64_t be64(const std::vector<uint8_t>& v) {
    uint64_t w = 0;
    for (size_t i = 0; i < 8; ++i) {
        w = w << 8 | v[i];
    }
    return w;
}

// The 8.8.8.8 session's keys.
struct Session88 {
    GoldenFile golden = read_golden("kdnet_golden_8.8.8.8.txt");
    KdnetKey control = *parse_kdnet_key("8.8.8.8");
    KdnetKey hmac = kdnet_hmac_key(control);
    KdnetKey data = to_key(golden.value("data key"));

    KdnetCipherKeys keys_for(const std::vector<uint8_t>& wire) const {
        return wire.at(5) == kKdnetControlChannel ? KdnetCipherKeys{control, hmac}
                                                  : KdnetCipherKeys{data, hmac};
    }
    KdnetDatagram open(const GoldenFrame& f) const {
        auto r = kdnet_open(f.wire, keys_for(f.wire));
        REQUIRE_MESSAGE(r.ok, f.title);
        return r.datagram;
    }
};

// The KD body of a golden frame, with its header fields.
struct Kd {
    proto::KD_PACKET header{};
    std::vector<uint8_t> payload;
};

Kd kd_of(const KdnetDatagram& d) {
    REQUIRE(d.body.size() >= 16);
    Kd kd;
    kd.header = *proto::kd_decode<proto::KD_PACKET>(d.body);
    kd.payload.assign(d.body.begin() + 16, d.body.end());
    return kd;
}

} // namespace

// ---------------------------------------------------------------- key parsing

TEST_CASE("key: 1.2.3.4 is four little-endian u64") {
    auto k = parse_kdnet_key("1.2.3.4");
    REQUIRE(k);
    std::vector<uint8_t> expected(32, 0);
    expected[0] = 1;
    expected[8] = 2;
    expected[16] = 3;
    expected[24] = 4;
    CHECK(std::vector<uint8_t>(k->begin(), k->end()) == expected);
}

TEST_CASE("key: base 36, multi-byte parts, case-insensitive, surrounding blanks") {
    auto k = parse_kdnet_key("zz.10.a.3w5e11264sgsf");
    REQUIRE(k);
    CHECK((*k)[0] == 0x0F); // zz = 35*36+35 = 1295 = 0x050F
    CHECK((*k)[1] == 0x05);
    CHECK((*k)[8] == 36);
    CHECK((*k)[16] == 10);
    for (size_t i = 24; i < 32; ++i) {
        CHECK((*k)[i] == 0xFF); // 3w5e11264sgsf = 2^64 - 1
    }
    auto upper = parse_kdnet_key("ZZ.10.A.3W5E11264SGSF");
    REQUIRE(upper);
    CHECK(*upper == *k);
    auto blanks = parse_kdnet_key("  zz.10.a.3w5e11264sgsf\n");
    REQUIRE(blanks);
    CHECK(*blanks == *k);
    // The CTF notes' key parses too (its parts are long).
    CHECK(parse_kdnet_key("17890.af3489a.9345kjm.lio147"));
}

TEST_CASE("key: malformed keys are rejected without echoing the key") {
    struct Bad {
        const char* key;
        const char* secret; // a piece of the key that must not appear in the message
        const char* says;   // what the message must mention
    };
    const Bad cases[] = {
        {"", "", "empty"},
        {"abc.def.ghi", "abc", "3 dot-separated parts"},
        {"abc.def.ghi.jkl.mno", "mno", "5 dot-separated parts"},
        {"secret1.secret2.secret3", "secret", "3 dot-separated parts"},
        {"abcd..ghi.jkl", "abcd", "part 2"},
        {"abcd.efgh.ijkl.", "ijkl", "part 4"},
        {"zzzzzzzzzzzzzz.b.c.d", "zzzzzzzzzzzzzz", "longer than 13"},
        {"zzzzzzzzzzzzz.b.c.d", "zzzzzzzzzzzzz", "64 bits"},
        {"a.b.3w5e11264sgsg.d", "3w5e11264sgsg", "64 bits"},
        {"a.b_c.d.e", "b_c", "outside 0-9"},
        {"a.b.c.d-e", "d-e", "outside 0-9"},
        {"k3y.s3cr3t.p@ss.w0rd", "s3cr3t", "part 3"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.key);
        auto r = parse_kdnet_key(c.key);
        REQUIRE_FALSE(r);
        CHECK(r.error().code == Errc::InvalidArgument);
        CHECK(r.error().message.find(c.says) != std::string::npos);
        if (c.secret[0] != '\0') {
            CHECK(r.error().message.find(c.secret) == std::string::npos);
        }
        if (c.key[0] != '\0') {
            CHECK(r.error().message.find(c.key) == std::string::npos);
        }
    }
}

// ---------------------------------------------------------------- keys of the real session

TEST_CASE("golden 8.8.8.8: control key, HMAC key and data key") {
    Session88 s;
    CHECK(std::vector<uint8_t>(s.control.begin(), s.control.end()) ==
          s.golden.value("control key"));
    CHECK(std::vector<uint8_t>(s.hmac.begin(), s.hmac.end()) == s.golden.value("hmac key"));
    CHECK(kdnet_hex(s.data) == "6bd91c57bd6a551ad30b509c05c0c95b32cc5e47a0866907eaf0b1583384f660");

    const GoldenFrame* resp = s.golden.frame("frame 2:");
    REQUIRE(resp != nullptr);
    // The data key is SHA-256(control key || the 322-byte RESPONSE body at plaintext offset 8).
    std::vector<uint8_t> body(resp->plain.begin() + 8, resp->plain.begin() + 8 + 322);
    CHECK(kdnet_data_key(s.control, body) == s.data);
    // And the same from the decrypted datagram.
    auto d = s.open(*resp);
    REQUIRE(d.body.size() == 322);
    CHECK(kdnet_data_key(s.control, d.body) == s.data);
}

TEST_CASE("golden 8.8.8.8: every datagram decrypts to the listed plaintext and re-encrypts "
          "to the captured bytes") {
    Session88 s;
    REQUIRE(s.golden.frames.size() == 9);
    for (const auto& f : s.golden.frames) {
        CAPTURE(f.title);
        auto r = kdnet_open(f.wire, s.keys_for(f.wire));
        REQUIRE(r.ok);
        const KdnetDatagram& d = r.datagram;
        const uint64_t word = be64(f.plain);
        CHECK(d.seq == word >> 8);
        CHECK(d.host_to_target == ((word & 0x80) != 0));
        CHECK(d.pad == (word & 0x7F));
        CHECK(d.version == 4);
        CHECK(d.channel == f.wire[5]);
        const std::vector<uint8_t> body(f.plain.begin() + 8, f.plain.end() - d.pad);
        CHECK(d.body == body);
        CHECK(f.wire.size() == 6 + f.plain.size() + 16);

        auto wire = kdnet_seal(d, s.keys_for(f.wire));
        REQUIRE(wire);
        CHECK(*wire == f.wire);
    }
}

TEST_CASE("golden 8.8.8.8: the OFFER names target and host") {
    Session88 s;
    auto d = s.open(*s.golden.frame("frame 1:"));
    REQUIRE(d.body.size() == 344);
    CHECK(d.body[0] == 1);
    CHECK(d.body[1] == 1);
    CHECK(d.seq == 3);
    CHECK_FALSE(d.host_to_target);
    // target ::ffff:192.168.2.72 port 51111, host ::ffff:192.168.2.1 port 51111
    CHECK(kdnet_hex(std::span(d.body).subspan(34, 18)) == "00000000000000000000ffffc0a80248c7a7");
    CHECK(kdnet_hex(std::span(d.body).subspan(52, 18)) == "00000000000000000000ffffc0a80201c7a7");
    auto resp = s.open(*s.golden.frame("frame 2:"));
    CHECK(resp.seq == 3);
    CHECK(resp.host_to_target);
    CHECK(resp.pad == 6);
    CHECK(std::equal(d.body.begin() + 2, d.body.begin() + 34, resp.body.begin() + 2));
}

TEST_CASE("golden 8.8.8.8: connection check, RESEND and ACK") {
    Session88 s;
    auto check = s.open(*s.golden.frame("frame 3:"));
    CHECK(check.seq == 1);
    CHECK(check.pad == 12);
    CHECK(kdnet_hex(check.body) == "00000000000000000102a8c0");

    auto resend = kd_of(s.open(*s.golden.frame("frame 5:")));
    CHECK(resend.header.PacketLeader == proto::CONTROL_PACKET_LEADER);
    CHECK(resend.header.PacketType == proto::PACKET_TYPE_KD_RESEND);
    CHECK(resend.header.PacketId == 0);

    auto ack_dg = s.open(*s.golden.frame("frame 7:"));
    CHECK(ack_dg.seq == 2);
    CHECK(ack_dg.host_to_target);
    CHECK(ack_dg.pad == 8);
    auto ack = kd_of(ack_dg);
    CHECK(ack.header.PacketType == proto::PACKET_TYPE_KD_ACKNOWLEDGE);
    CHECK(ack.header.ByteCount == 0);
    CHECK(ack.payload.empty());
    // kdcom_encode of the same control packet is the KDNET body (control packets carry no
    // trailer on either link).
    KdPacket p;
    p.type = proto::PACKET_TYPE_KD_ACKNOWLEDGE;
    p.id = 0;
    CHECK(kdcom_encode(p) == ack_dg.body);
}

TEST_CASE("golden 8.8.8.8: GetVersion request and reply") {
    Session88 s;
    auto req = kd_of(s.open(*s.golden.frame("frame 10:")));
    CHECK(req.header.PacketLeader == proto::PACKET_LEADER);
    CHECK(req.header.PacketType == proto::PACKET_TYPE_KD_STATE_MANIPULATE);
    CHECK(req.header.PacketId == 0x80000000);
    CHECK(req.header.ByteCount == 56);
    CHECK(kd_checksum(req.payload.data(), req.payload.size()) == req.header.Checksum);
    auto m = proto::kd_decode<proto::DBGKD_MANIPULATE_STATE64>(req.payload);
    REQUIRE(m);
    CHECK(m->ApiNumber == proto::DbgKdGetVersionApi);

    auto rep = kd_of(s.open(*s.golden.frame("frame 12:")));
    CHECK(rep.header.PacketId == 4);
    CHECK(kd_checksum(rep.payload.data(), rep.payload.size()) == rep.header.Checksum);
    auto v = proto::kd_decode<proto::DBGKD_MANIPULATE_STATE64>(rep.payload);
    REQUIRE(v);
    CHECK(v->ReturnStatus == 0);
    CHECK(v->u.GetVersion64.MajorVersion == 0x040F);
    CHECK(v->u.GetVersion64.MinorVersion == 10586);
    CHECK(v->u.GetVersion64.MachineType == proto::IMAGE_FILE_MACHINE_AMD64);
    CHECK(v->u.GetVersion64.KernBase == 0x96F000);
}

TEST_CASE("golden 8.8.8.8: Continue2 and the breakpoint state change") {
    Session88 s;
    auto c = kd_of(s.open(*s.golden.frame("frame 234:")));
    CHECK(c.header.PacketId == 0x8000006e);
    CHECK(c.header.Checksum == 0x524);
    auto m = proto::kd_decode<proto::DBGKD_MANIPULATE_STATE64>(c.payload);
    REQUIRE(m);
    CHECK(m->ApiNumber == proto::DbgKdContinueApi2);
    CHECK(m->u.Continue2.ContinueStatus == proto::DBG_CONTINUE);
    CHECK(m->u.Continue2.ControlSet.TraceFlag == 0);
    CHECK(m->u.Continue2.ControlSet.Dr7 == 0x400);
    CHECK(m->u.Continue2.ControlSet.CurrentSymbolStart == 1);

    auto sc = kd_of(s.open(*s.golden.frame("frame 378:")));
    CHECK(sc.header.PacketType == proto::PACKET_TYPE_KD_STATE_CHANGE64);
    CHECK(sc.header.PacketId == 0xBE);
    CHECK(sc.header.Checksum == 0x24DF);
    CHECK(kd_checksum(sc.payload.data(), sc.payload.size()) == 0x24DF);
    auto w = proto::kd_decode<proto::DBGKD_ANY_WAIT_STATE_CHANGE>(sc.payload);
    REQUIRE(w);
    CHECK(w->NewState == proto::DbgKdExceptionStateChange);
    CHECK(w->ProgramCounter == 0x9cf07e);
    CHECK(w->u.Exception.ExceptionRecord.ExceptionCode == proto::STATUS_BREAKPOINT);
    CHECK(w->u.Exception.ExceptionRecord.ExceptionAddress == 0x9cf07d);
    CHECK(w->ControlReport.Dr6 == 0xfffe0ff0);
    CHECK(w->ControlReport.InstructionStream[0] == 0xCC);
    CHECK(w->ControlReport.SegCs == 0x10);
}

TEST_CASE("break-in datagram: one 0x62 byte, pad 7, 16 bytes of plaintext") {
    Session88 s;
    KdnetDatagram d;
    d.version = 4;
    d.channel = kKdnetDataChannel;
    d.seq = 2;
    d.host_to_target = true;
    d.body = {0x62};
    auto wire = kdnet_seal(d, KdnetCipherKeys{s.data, s.hmac});
    REQUIRE(wire);
    CHECK(wire->size() == 6 + 16 + 16);
    auto r = kdnet_open(*wire, KdnetCipherKeys{s.data, s.hmac});
    REQUIRE(r.ok);
    CHECK(r.datagram.pad == 7);
    CHECK(r.datagram.seq == 2);
    CHECK(r.datagram.host_to_target);
    CHECK(r.datagram.body == std::vector<uint8_t>{0x62});
}

TEST_CASE("tampered, truncated and mis-keyed datagrams do not open") {
    Session88 s;
    const GoldenFrame& f = *s.golden.frame("frame 10:");
    auto keys = s.keys_for(f.wire);
    REQUIRE(kdnet_open(f.wire, keys).ok);
    for (size_t i = 0; i < f.wire.size(); ++i) {
        auto bad = f.wire;
        bad[i] ^= 0x01;
        auto r = kdnet_open(bad, keys);
        CAPTURE(i);
        CHECK_FALSE(r.ok);
        CHECK(r.datagram.body.empty());
        if (i >= 4) {
            CHECK(r.error == KdnetOpenError::BadTag); // the header is authenticated too
        } else {
            CHECK(r.error == KdnetOpenError::Malformed);
        }
    }
    for (size_t len : {size_t{0}, size_t{5}, size_t{37}, f.wire.size() - 1, f.wire.size() - 8}) {
        std::vector<uint8_t> cut(f.wire.begin(), f.wire.begin() + static_cast<long>(len));
        CAPTURE(len);
        CHECK_FALSE(kdnet_plausible(cut));
        CHECK(kdnet_open(cut, keys).error == KdnetOpenError::Malformed);
    }
    // One whole block short still looks like a datagram, but its tag cannot match.
    std::vector<uint8_t> block_short(f.wire.begin(), f.wire.end() - 16);
    CHECK(kdnet_plausible(block_short));
    CHECK(kdnet_open(block_short, keys).error == KdnetOpenError::BadTag);
    // The control key on a data datagram, and a wrong HMAC key.
    auto r = kdnet_open(f.wire, KdnetCipherKeys{s.control, s.hmac});
    CHECK_FALSE(r.ok);
    CHECK(r.error == KdnetOpenError::BadTag);
    auto other = kdnet_hmac_key(*parse_kdnet_key("8.8.8.9"));
    CHECK(kdnet_open(f.wire, KdnetCipherKeys{s.data, other}).error == KdnetOpenError::BadTag);
}

TEST_CASE("seal: seq limits and padding for every body length") {
    Session88 s;
    KdnetDatagram d;
    d.seq = kKdnetMaxSeq + 1;
    CHECK_FALSE(kdnet_seal(d, KdnetCipherKeys{s.data, s.hmac}));
    for (size_t m = 0; m < 40; ++m) {
        d.seq = kKdnetMaxSeq - m;
        d.host_to_target = (m & 1) != 0;
        d.body.assign(m, static_cast<uint8_t>(m));
        auto wire = kdnet_seal(d, KdnetCipherKeys{s.data, s.hmac});
        REQUIRE(wire);
        CHECK((wire->size() - 22) % 16 == 0);
        auto r = kdnet_open(*wire, KdnetCipherKeys{s.data, s.hmac});
        REQUIRE(r.ok);
        CHECK(r.datagram.body == d.body);
        CHECK(r.datagram.seq == d.seq);
        CHECK(r.datagram.host_to_target == d.host_to_target);
        CHECK((8 + m + r.datagram.pad) % 16 == 0);
    }
}

// ---------------------------------------------------------------- the v5 capture

TEST_CASE("golden 1.2.3.4 v5: both OFFERs decrypt, re-encrypt, and name target and host") {
    GoldenFile g = read_golden("kdnet_golden_1.2.3.4_v5.txt");
    auto control = parse_kdnet_key("1.2.3.4");
    REQUIRE(control);
    CHECK(std::vector<uint8_t>(control->begin(), control->end()) == g.value("control key"));
    const KdnetKey hmac = kdnet_hmac_key(*control);
    CHECK(std::vector<uint8_t>(hmac.begin(), hmac.end()) == g.value("hmac key"));
    REQUIRE(g.frames.size() == 2);
    for (const auto& f : g.frames) {
        CAPTURE(f.title);
        auto r = kdnet_open(f.wire, KdnetCipherKeys{*control, hmac});
        REQUIRE(r.ok);
        const auto& d = r.datagram;
        CHECK(d.version == 5);
        CHECK(d.channel == kKdnetControlChannel);
        CHECK(d.seq == 0x9cc);
        CHECK_FALSE(d.host_to_target);
        CHECK(d.pad == 0);
        REQUIRE(d.body.size() == 344);
        CHECK(std::equal(d.body.begin(), d.body.end(), f.plain.begin() + 8));
        CHECK(d.body[0] == 1);
        CHECK(d.body[1] == 1);
        // target 192.168.1.105:50000, host 192.168.1.101:50000 twice (v5)
        CHECK(kdnet_hex(std::span(d.body).subspan(34, 18)) ==
              "00000000000000000000ffffc0a80169c350");
        CHECK(kdnet_hex(std::span(d.body).subspan(52, 18)) ==
              "00000000000000000000ffffc0a80165c350");
        CHECK(kdnet_hex(std::span(d.body).subspan(70, 18)) ==
              "00000000000000000000ffffc0a80165c350");
        auto wire = kdnet_seal(d, KdnetCipherKeys{*control, hmac});
        REQUIRE(wire);
        CHECK(*wire == f.wire);
    }
    // The wrong key (the one in the CTF notes) does not open them.
    auto notes = parse_kdnet_key("17890.af3489a.9345kjm.lio147");
    REQUIRE(notes);
    auto r = kdnet_open(g.frames[0].wire, KdnetCipherKeys{*notes, kdnet_hmac_key(*notes)});
    CHECK_FALSE(r.ok);
    CHECK(r.error == KdnetOpenError::BadTag);
}
