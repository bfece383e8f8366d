// The capture decoder (cli/KdnetDecode) against the real sessions: every datagram of
// windbg-uncut.pcapng.gz decrypts and verifies, and each line agrees field by field with the
// reference decode windbg-uncut.decoded.txt; the AeroCTF v5 OFFERs decode with key 1.2.3.4.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "cli/KdnetDecode.h"
#include "transport/KdPacket.h"

#include <cstring>
#include <doctest/doctest.h>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

using namespace kdcart;
using namespace kdcart::cli;
using namespace kdcart::transport;

namespace {

const std::string kVectors = std::string(KDCART_TEST_DATA_DIR) + "/kdnet/";

// A decoded line split into its leading words and its key=value fields. Values written as
// Python bytes literals (b'...') may contain blanks; "path=" takes the rest of the line.
struct Parsed {
    std::vector<std::string> words; // tokens without '='
    std::map<std::string, std::string> kv;
};

Parsed parse_line(const std::string& line) {
    Parsed p;
    size_t i = 0;
    while (i < line.size()) {
        while (i < line.size() && line[i] == ' ') {
            ++i;
        }
        if (i >= line.size()) {
            break;
        }
        size_t j = i;
        while (j < line.size() && line[j] != ' ' && line[j] != '=') {
            ++j;
        }
        if (j >= line.size() || line[j] == ' ') {
            p.words.push_back(line.substr(i, j - i));
            i = j;
            continue;
        }
        const std::string key = line.substr(i, j - i);
        size_t v = j + 1;
        size_t end = v;
        if (key == "path") {
            end = line.size();
        } else if (v + 1 < line.size() && line[v] == 'b' &&
                   (line[v + 1] == '\'' || line[v + 1] == '"')) {
            const char q = line[v + 1];
            end = v + 2;
            while (end < line.size() && line[end] != q) {
                end += line[end] == '\\' ? 2 : 1;
            }
            end = std::min(end + 1, line.size());
        } else {
            while (end < line.size() && line[end] != ' ') {
                ++end;
            }
        }
        p.kv[key] = line.substr(v, end - v);
        i = end;
    }
    return p;
}

std::vector<std::string> read_lines(const std::string& path) {
    std::ifstream in(path);
    std::vector<std::string> out;
    std::string line;
    while (std::getline(in, line)) {
        out.push_back(line);
    }
    return out;
}

std::string type_name_of(const std::string& reference) {
    static const std::map<std::string, std::string> names = {
        {"MANIP", "STATE_MANIPULATE"},
        {"SC64", "STATE_CHANGE64"},
        {"DEBUG_IO", "DEBUG_IO"},
        {"FILE_IO", "FILE_IO"},
        {"ACK", "ACK"},
        {"RESEND", "RESEND"},
        {"RESET", "RESET"},
    };
    auto it = names.find(reference);
    return it == names.end() ? "?" + reference : it->second;
}

} // namespace

TEST_CASE("windbg-uncut: all 955 datagrams decrypt and match the reference decode") {
    auto r = kdnet_decode_capture(kVectors + "windbg-uncut.pcapng.gz", "8.8.8.8");
    REQUIRE(r);
    const auto& s = r->summary;
    CHECK(s.frames == 955);
    CHECK(s.datagrams == 955);
    CHECK(s.decrypted == 955);
    CHECK(s.hmac_failures == 0);
    CHECK(s.no_data_key == 0);
    CHECK(s.malformed == 0);
    CHECK(s.handshakes == 1);
    CHECK(s.kd_packets == 526); // 263 data + 263 control packets (tooling.md)
    CHECK(s.kd_checksum_failures == 0);
    CHECK(s.to_string().find("955 decrypted") != std::string::npos);

    auto reference = read_lines(kVectors + "windbg-uncut.decoded.txt");
    // The reference ends with a Python Counter of the APIs; keep the per-datagram lines.
    while (!reference.empty() && reference.back().rfind("Counter(", 0) == 0) {
        reference.pop_back();
    }
    REQUIRE(reference.size() == 955);
    REQUIRE(r->lines.size() == 955);

    size_t compared_fields = 0;
    for (size_t i = 0; i < reference.size(); ++i) {
        CAPTURE(reference[i]);
        CAPTURE(r->lines[i]);
        const Parsed ref = parse_line(reference[i]);
        const Parsed got = parse_line(r->lines[i]);
        REQUIRE(ref.words.size() >= 2);
        REQUIRE(got.words.size() >= 2);
        CHECK(got.words[0] == ref.words[0]); // frame number
        CHECK(got.words[1] == ref.words[1]); // src->dst
        for (const char* k : {"udp", "v", "ch", "hmac", "seq", "dir", "pad"}) {
            CHECK(got.kv.count(k) == 1);
            CHECK(got.kv.at(k) == ref.kv.at(k));
        }
        const bool ref_ctrl =
            std::find(ref.words.begin(), ref.words.end(), "ctrl:") != ref.words.end();
        if (ref_ctrl) {
            const std::string kind = ref.kv.at("b9") == "0x1" ? "OFFER" : "RESPONSE";
            CHECK(std::find(got.words.begin(), got.words.end(), kind) != got.words.end());
            if (ref.kv.count("data_key")) {
                CHECK(got.kv.at("data_key") == ref.kv.at("data_key"));
            }
            continue;
        }
        if (ref.kv.count("raw")) { // the connection check
            CHECK(got.kv.at("raw") == ref.kv.at("raw"));
            continue;
        }
        // KD packet: the type name is the word after "leader=..."; ours comes from
        // protocol::packet_type_name.
        REQUIRE(ref.words.size() >= 4);
        CHECK(got.words.size() >= 4);
        CHECK(got.words.back() == type_name_of(ref.words.back()));
        CHECK(got.kv.at("csum") == (ref.kv.at("csum_ok") == "True" ? "ok" : "BAD"));
        for (const auto& [k, v] : ref.kv) {
            if (k == "udp" || k == "v" || k == "ch" || k == "hmac" || k == "seq" || k == "dir" ||
                k == "pad" || k == "csum_ok") {
                continue;
            }
            CAPTURE(k);
            REQUIRE(got.kv.count(k) == 1);
            CHECK(got.kv.at(k) == v);
            ++compared_fields;
        }
    }
    // leader/len/id on every KD line plus the API fields
    CHECK(compared_fields > 526 * 4); // leader, len, id on all 526 KD lines, plus API fields
}

TEST_CASE("aeroctf2021-kek: the v5 OFFERs decode with 1.2.3.4; the data channel has no key") {
    auto r = kdnet_decode_capture(kVectors + "aeroctf2021-kek.pcap", "1.2.3.4");
    REQUIRE(r);
    const auto& s = r->summary;
    CHECK(s.frames == 704);
    CHECK(s.datagrams == 704);
    CHECK(s.decrypted == 10);
    CHECK(s.hmac_failures == 0);
    CHECK(s.no_data_key == 694);
    CHECK(s.handshakes == 0);
    size_t offers = 0;
    for (const auto& line : r->lines) {
        if (line.find(" ch=1 ") == std::string::npos) {
            CHECK(line.find("no data key") != std::string::npos);
            continue;
        }
        ++offers;
        CAPTURE(line);
        auto p = parse_line(line);
        CHECK(p.words[1] == "192.168.1.105:50000->192.168.1.101:50000");
        CHECK(p.kv.at("v") == "5");
        CHECK(p.kv.at("hmac") == "ok");
        CHECK(p.kv.at("dir") == "0");
        CHECK(p.kv.at("target") == "192.168.1.105:50000");
        CHECK(p.kv.at("host") == "192.168.1.101:50000");
        CHECK(std::find(p.words.begin(), p.words.end(), "OFFER") != p.words.end());
    }
    CHECK(offers == 10);
    // The first pair is the one in kdnet_golden_1.2.3.4_v5.txt.
    auto first = std::find_if(r->lines.begin(), r->lines.end(),
                              [](const std::string& l) { return l.find(" ch=1 ") != l.npos; });
    REQUIRE(first != r->lines.end());
    CHECK(first->find("seq=0x9cc") != std::string::npos);
    CHECK(first->find("client_random=0b37ef66459557f6e6ca41ec51a89d371c80a4ace78402d98d75c096c9"
                      "328254") != std::string::npos);
}

TEST_CASE("a wrong key: every OFFER fails its HMAC") {
    auto r =
        kdnet_decode_capture(kVectors + "aeroctf2021-kek.pcap", "17890.af3489a.9345kjm.lio147");
    REQUIRE(r);
    CHECK(r->summary.decrypted == 0);
    CHECK(r->summary.hmac_failures == 10);
    size_t bad = 0;
    for (const auto& line : r->lines) {
        bad += line.find("hmac=BAD") != std::string::npos ? 1 : 0;
    }
    CHECK(bad == 10);
}

TEST_CASE("errors: a malformed key (not echoed) and a missing capture") {
    auto bad_key = kdnet_decode_capture(kVectors + "aeroctf2021-kek.pcap", "sekrit.1.2");
    REQUIRE_FALSE(bad_key);
    CHECK(bad_key.error().code == Errc::InvalidArgument);
    CHECK(bad_key.error().message.find("sekrit") == std::string::npos);
    auto missing = kdnet_decode_capture(kVectors + "nope.pcapng", "1.2.3.4");
    REQUIRE_FALSE(missing);
    CHECK(missing.error().code == Errc::NotFound);
}

TEST_CASE("decoder: break-in, connection check, GetString and unknown control messages") {
    const KdnetKey control = *parse_kdnet_key("1.1.1.1");
    const KdnetKey hmac = kdnet_hmac_key(control);
    KdnetDecoder dec(control);
    IpEndpoint a;
    a.address = {10, 0, 0, 1};
    a.port = 50000;
    IpEndpoint b = a;
    b.address[3] = 2;

    auto seal = [&](const KdnetKey& aes, uint8_t ch, uint64_t seq, bool dir,
                    std::vector<uint8_t> body) {
        KdnetDatagram d;
        d.version = 2;
        d.channel = ch;
        d.seq = seq;
        d.host_to_target = dir;
        d.body = std::move(body);
        return *kdnet_seal(d, KdnetCipherKeys{aes, hmac});
    };
    // Data before any RESPONSE cannot be opened.
    auto early = seal(control, 0, 1, false, {0x62});
    CHECK(dec.decode(1, a, b, early).find("no data key") != std::string::npos);

    std::vector<uint8_t> resp(322, 0);
    resp[0] = 1;
    resp[1] = 2;
    resp[40] = 0x77;
    const KdnetKey data = kdnet_data_key(control, resp);
    auto line = dec.decode(2, b, a, seal(control, 1, 5, true, resp));
    CHECK(line.find("RESPONSE") != std::string::npos);
    CHECK(line.find("data_key=" + kdnet_hex(data)) != std::string::npos);

    CHECK(dec.decode(3, b, a, seal(data, 0, 1, true, {0x62})).find("break-in") !=
          std::string::npos);
    std::vector<uint8_t> check = {0, 0, 0, 0, 0, 0, 0, 0, 0x0B, 0x00, 0xA8, 0xC0};
    CHECK(dec.decode(4, a, b, seal(data, 0, 1, false, check)).find("host=192.168.0.11") !=
          std::string::npos);

    // DbgPrompt (GetString) with a quote in it: Python switches to double quotes.
    std::vector<uint8_t> kd = {0x30, 0x30, 0x30, 0x30, 3, 0};
    std::vector<uint8_t> payload = {0x31, 0x32, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0};
    for (char c : std::string("it's")) {
        payload.push_back(static_cast<uint8_t>(c));
    }
    kd.push_back(static_cast<uint8_t>(payload.size()));
    kd.push_back(0);
    for (int i = 0; i < 4; ++i) {
        kd.push_back(i == 0 ? 2 : 0);
    }
    const uint32_t sum = kd_checksum(payload.data(), payload.size());
    for (int i = 0; i < 4; ++i) {
        kd.push_back(static_cast<uint8_t>(sum >> (8 * i)));
    }
    kd.insert(kd.end(), payload.begin(), payload.end());
    line = dec.decode(5, a, b, seal(data, 0, 2, false, kd));
    CAPTURE(line);
    CHECK(line.find("DEBUG_IO len=20 id=0x2 csum=ok api=GetString prompt=b\"it's\"") !=
          std::string::npos);
    kd.back() ^= 1; // checksum no longer matches
    line = dec.decode(6, a, b, seal(data, 0, 3, false, kd));
    CHECK(line.find("csum=BAD") != std::string::npos);

    line = dec.decode(7, a, b, seal(control, 1, 9, false, {1, 9, 9}));
    CHECK(line.find("ctrl: b8=0x1 b9=0x9") != std::string::npos);

    std::vector<uint8_t> junk = {'M', 'D', 'B', 'G', 2, 0, 1, 2, 3};
    CHECK(dec.decode(8, a, b, junk).find("malformed") != std::string::npos);
    auto tampered = seal(data, 0, 4, false, {0x62});
    tampered[10] ^= 1;
    CHECK(dec.decode(9, a, b, tampered).find("hmac=BAD") != std::string::npos);

    const auto& s = dec.summary();
    CHECK(s.datagrams == 9);
    CHECK(s.no_data_key == 1);
    CHECK(s.handshakes == 1);
    CHECK(s.kd_packets == 2);
    CHECK(s.kd_checksum_failures == 1);
    CHECK(s.hmac_failures == 1);
    CHECK(s.malformed == 1);
}

TEST_CASE("decoder: authentic datagrams with random KD contents never crash it") {
    const KdnetKey control = *parse_kdnet_key("1.1.1.1");
    const KdnetKey hmac = kdnet_hmac_key(control);
    KdnetDecoder dec(control);
    IpEndpoint a;
    a.address = {10, 0, 0, 1};
    std::vector<uint8_t> resp(322, 0);
    resp[0] = 1;
    resp[1] = 2;
    KdnetDatagram d;
    d.version = 5;
    d.channel = kKdnetControlChannel;
    d.seq = 1;
    d.host_to_target = true;
    d.body = resp;
    REQUIRE(dec.decode(1, a, a, *kdnet_seal(d, KdnetCipherKeys{control, hmac})).find("RESPONSE") !=
            std::string::npos);
    const KdnetKey data = kdnet_data_key(control, resp);

    std::mt19937 rng(7);
    const uint16_t types[] = {2, 3, 4, 7, 11, 1, 0, 0xFFFF};
    for (int i = 0; i < 5000; ++i) {
        std::vector<uint8_t> body(rng() % 400);
        for (auto& b : body) {
            b = static_cast<uint8_t>(rng());
        }
        if (body.size() >= 16 && (i % 3) != 0) {
            const uint32_t leader = i % 5 == 0 ? 0x69696969 : 0x30303030;
            std::memcpy(body.data(), &leader, 4);
            const uint16_t type = types[rng() % 8];
            std::memcpy(body.data() + 4, &type, 2);
            const uint16_t count =
                static_cast<uint16_t>(i % 2 == 0 ? body.size() - 16 : rng() % 600);
            std::memcpy(body.data() + 6, &count, 2);
            if (body.size() >= 20 && i % 4 == 0) {
                const uint32_t api = 0x3130 + rng() % 0x40;
                std::memcpy(body.data() + 16, &api, 4);
            }
        }
        d.channel = (i % 10 == 0) ? kKdnetControlChannel : kKdnetDataChannel;
        d.seq = static_cast<uint64_t>(i + 2);
        d.host_to_target = (i & 1) != 0;
        d.body = body;
        const KdnetKey& aes = d.channel == kKdnetControlChannel ? control : data;
        auto wire = kdnet_seal(d, KdnetCipherKeys{aes, hmac});
        REQUIRE(wire);
        const auto line = dec.decode(static_cast<uint64_t>(i + 2), a, a, *wire);
        CHECK(line.find("hmac=ok") != std::string::npos);
    }
    CHECK(dec.summary().hmac_failures == 0);
}
