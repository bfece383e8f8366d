// libFuzzer target: the pcap / pcapng reader (kdcart --decode) on a hostile capture file, and
// gunzip for .gz captures. Every frame is read to the end; nothing may crash or run away.
//
//   build-fuzz/bin/fuzz_pcap_reader -max_total_time=60 WORKDIR tests/fuzz/corpus/pcap_reader
#include "transport/PcapReader.h"

#include <cstddef>
#include <cstdint>

using namespace kdcart::transport;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    auto reader = PcapReader::from_bytes(std::vector<uint8_t>(data, data + size));
    if (reader) {
        for (int i = 0; i < 100000; ++i) {
            auto frame = reader->next();
            if (!frame || !*frame) {
                break;
            }
        }
    }
    (void)gunzip(std::span<const uint8_t>(data, size), 1 << 20);
    return 0;
}
