// Build-time helper: writes the standard PE checksum into an image's optional header
// (lld-link has no /RELEASE). Usage: kdcart_pe_checksum FILE...
#include "hw/PeImage.h"

#include <cstdio>
#include <cstring>
#include <fstream>

int main(int argc, char** argv) {
    using kdcart::hw::PeImage;
    for (int i = 1; i < argc; i++) {
        auto image = PeImage::load_file(argv[i]);
        if (!image) {
            std::fprintf(stderr, "kdcart_pe_checksum: %s\n", image.error().message.c_str());
            return 1;
        }
        std::vector<uint8_t> bytes(image->file().begin(), image->file().end());
        uint32_t sum = PeImage::compute_checksum(bytes, image->checksum_offset());
        std::memcpy(bytes.data() + image->checksum_offset(), &sum, sizeof(sum));
        std::ofstream out(argv[i], std::ios::binary | std::ios::trunc);
        out.write(reinterpret_cast<const char*>(bytes.data()),
                  static_cast<std::streamsize>(bytes.size()));
        if (!out) {
            std::fprintf(stderr, "kdcart_pe_checksum: cannot write %s\n", argv[i]);
            return 1;
        }
    }
    return 0;
}
