#include "engine/PeImage.h"
#include "engine/ByteLoad.h"

#include <cstdio>
#include <cstring>
#include <memory>

namespace kdcart::engine {

namespace {

template <class T> T get(const std::vector<uint8_t>& b, size_t off) {
    return load<T>(b, off).value_or(T{});
}

constexpr uint32_t kMaxLfanew = 0x10000;
constexpr uint16_t kMaxSections = 96; // the loader's own limit
constexpr uint32_t kDebugEntrySize = 28;
constexpr uint32_t kMaxDebugEntries = 64;
constexpr uint32_t kCodeViewRsds = 0x53445352; // 'RSDS'
constexpr uint32_t kDebugTypeCodeView = 2;
constexpr uint32_t kDebugTypeRepro = 16;
constexpr uint32_t kMaxCodeViewSize = 4096;

std::string hex_upper(uint64_t v, int digits) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%0*llX", digits, static_cast<unsigned long long>(v));
    return buf;
}

} // namespace

std::string CodeViewRecord::guid_hex() const {
    uint32_t d1 = 0;
    uint16_t d2 = 0, d3 = 0;
    std::memcpy(&d1, guid.data(), 4);
    std::memcpy(&d2, guid.data() + 4, 2);
    std::memcpy(&d3, guid.data() + 6, 2);
    std::string s = hex_upper(d1, 8) + hex_upper(d2, 4) + hex_upper(d3, 4);
    for (size_t i = 8; i < 16; ++i) {
        s += hex_upper(guid[i], 2);
    }
    return s;
}

std::string CodeViewRecord::guid_string() const {
    const std::string h = guid_hex();
    return "{" + h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" +
           h.substr(16, 4) + "-" + h.substr(20) + "}";
}

std::string CodeViewRecord::store_key() const {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%X", age);
    return guid_hex() + buf;
}

std::string CodeViewRecord::pdb_file_name() const {
    const size_t slash = pdb_name.find_last_of("\\/");
    return slash == std::string::npos ? pdb_name : pdb_name.substr(slash + 1);
}

const PeSection* PeImageInfo::section_of(uint32_t rva) const {
    for (const auto& s : sections) {
        const uint32_t span = std::max(s.virtual_size, s.raw_size);
        if (rva >= s.virtual_address && rva - s.virtual_address < span) {
            return &s;
        }
    }
    return nullptr;
}

bool PeImageInfo::is_code(uint32_t rva) const {
    const PeSection* s = section_of(rva);
    return s && (s->characteristics & (0x20000000u | 0x20u)) != 0; // MEM_EXECUTE | CNT_CODE
}

Result<PeImageInfo> read_pe_image(const ImageReader& read, PeReadParts parts) {
    const auto dos = read(0, 0x40);
    const auto mz = load<uint16_t>(dos, 0);
    const auto lfanew = load<uint32_t>(dos, 0x3C);
    if (!mz || *mz != 0x5A4D || !lfanew || *lfanew > kMaxLfanew || *lfanew < 0x40) {
        return make_error(Errc::Malformed, "no MZ header");
    }
    // Signature, file header, and the largest optional header (PE32+ with 16 directories).
    const uint32_t nt_off = *lfanew;
    const auto nt = read(nt_off, parts.directories ? 4 + 20 + 240 : 4 + 20 + 0x70 + 8);
    if (get<uint32_t>(nt, 0) != 0x00004550 || nt.size() < 24 + 2) {
        return make_error(Errc::Malformed, "no PE signature");
    }
    PeImageInfo info;
    info.machine = get<uint16_t>(nt, 4);
    info.number_of_sections = get<uint16_t>(nt, 6);
    info.timestamp = get<uint32_t>(nt, 8);
    info.symbol_table_pointer = get<uint32_t>(nt, 12);
    info.symbol_count = get<uint32_t>(nt, 16);
    info.optional_header_size = get<uint16_t>(nt, 20);
    const uint16_t opt_size = get<uint16_t>(nt, 20);
    info.characteristics = get<uint16_t>(nt, 22);
    const size_t opt = 24;
    const uint16_t magic = get<uint16_t>(nt, opt);
    if (magic != 0x10B && magic != 0x20B) {
        return make_error(Errc::Malformed, "unknown optional header magic");
    }
    info.pe32_plus = magic == 0x20B;
    const size_t min_opt = info.pe32_plus ? 112 : 96;
    if (opt_size < min_opt || nt.size() < opt + min_opt) {
        return make_error(Errc::Malformed, "optional header too short");
    }
    info.linker_major = get<uint8_t>(nt, opt + 2);
    info.linker_minor = get<uint8_t>(nt, opt + 3);
    info.size_of_code = get<uint32_t>(nt, opt + 4);
    info.size_of_initialized_data = get<uint32_t>(nt, opt + 8);
    info.size_of_uninitialized_data = get<uint32_t>(nt, opt + 12);
    info.base_of_code = get<uint32_t>(nt, opt + 20);
    info.image_major = get<uint16_t>(nt, opt + 44);
    info.image_minor = get<uint16_t>(nt, opt + 46);
    info.entry_point = get<uint32_t>(nt, opt + 16);
    info.image_base = info.pe32_plus ? get<uint64_t>(nt, opt + 24) : get<uint32_t>(nt, opt + 28);
    info.section_alignment = get<uint32_t>(nt, opt + 32);
    info.file_alignment = get<uint32_t>(nt, opt + 36);
    info.os_major = get<uint16_t>(nt, opt + 40);
    info.os_minor = get<uint16_t>(nt, opt + 42);
    info.subsystem_major = get<uint16_t>(nt, opt + 48);
    info.subsystem_minor = get<uint16_t>(nt, opt + 50);
    info.size_of_image = get<uint32_t>(nt, opt + 56);
    info.size_of_headers = get<uint32_t>(nt, opt + 60);
    info.checksum = get<uint32_t>(nt, opt + 64);
    info.subsystem = get<uint16_t>(nt, opt + 68);
    info.dll_characteristics = get<uint16_t>(nt, opt + 70);
    if (info.pe32_plus) {
        info.stack_reserve = get<uint64_t>(nt, opt + 72);
        info.stack_commit = get<uint64_t>(nt, opt + 80);
        info.heap_reserve = get<uint64_t>(nt, opt + 88);
        info.heap_commit = get<uint64_t>(nt, opt + 96);
    } else {
        info.stack_reserve = get<uint32_t>(nt, opt + 72);
        info.stack_commit = get<uint32_t>(nt, opt + 76);
        info.heap_reserve = get<uint32_t>(nt, opt + 80);
        info.heap_commit = get<uint32_t>(nt, opt + 84);
    }
    const size_t ndir_off = info.pe32_plus ? 108 : 92;
    const size_t dir_off = ndir_off + 4;
    uint32_t ndirs = std::min<uint32_t>(get<uint32_t>(nt, opt + ndir_off), 16);
    // Only directories that fit inside the declared optional header count (and, reading only
    // the first, only that one).
    ndirs = static_cast<uint32_t>(
        std::min<size_t>(ndirs, opt_size > dir_off ? (opt_size - dir_off) / 8 : 0));
    if (!parts.directories) {
        ndirs = std::min<uint32_t>(ndirs, 1);
    }
    for (uint32_t i = 0; i < ndirs; ++i) {
        info.directories.push_back({get<uint32_t>(nt, opt + dir_off + i * 8),
                                    get<uint32_t>(nt, opt + dir_off + i * 8 + 4)});
    }

    // Section table.
    if (info.number_of_sections > kMaxSections) {
        return make_error(Errc::Malformed,
                          "too many sections (" + std::to_string(info.number_of_sections) + ")");
    }
    const uint32_t sec_off = nt_off + 24 + opt_size;
    const uint32_t sec_count = parts.sections ? info.number_of_sections : 0u;
    const auto sec = sec_count ? read(sec_off, sec_count * 40u) : std::vector<uint8_t>{};
    if (sec.size() < sec_count * 40u) {
        return make_error(Errc::Unreadable, "section table not readable");
    }
    for (uint16_t i = 0; i < sec_count; ++i) {
        const size_t o = i * 40u;
        PeSection s;
        for (size_t c = 0; c < 8 && sec[o + c] != 0; ++c) {
            s.name.push_back(static_cast<char>(sec[o + c]));
        }
        s.virtual_size = get<uint32_t>(sec, o + 8);
        s.virtual_address = get<uint32_t>(sec, o + 12);
        s.raw_size = get<uint32_t>(sec, o + 16);
        s.raw_pointer = get<uint32_t>(sec, o + 20);
        s.relocations_pointer = get<uint32_t>(sec, o + 24);
        s.line_numbers_pointer = get<uint32_t>(sec, o + 28);
        s.relocation_count = get<uint16_t>(sec, o + 32);
        s.line_number_count = get<uint16_t>(sec, o + 34);
        s.characteristics = get<uint32_t>(sec, o + 36);
        info.sections.push_back(std::move(s));
    }

    // CodeView record from the debug directory (a missing or broken one is not an error: the
    // image simply names no PDB).
    if (const auto* dbg = info.directory(k_dir_debug);
        parts.debug && dbg && dbg->rva != 0 && dbg->size != 0) {
        const uint32_t n = std::min(dbg->size / kDebugEntrySize, kMaxDebugEntries);
        const auto entries = read(dbg->rva, n * kDebugEntrySize);
        for (uint32_t i = 0; i < n && (i + 1) * kDebugEntrySize <= entries.size(); ++i) {
            const size_t o = i * kDebugEntrySize;
            const uint32_t type = get<uint32_t>(entries, o + 12);
            info.debug_entries.push_back(
                {get<uint32_t>(entries, o + 4), get<uint16_t>(entries, o + 8),
                 get<uint16_t>(entries, o + 10), type, get<uint32_t>(entries, o + 16),
                 get<uint32_t>(entries, o + 20), get<uint32_t>(entries, o + 24)});
            if (type == kDebugTypeRepro) {
                info.reproducible = true;
            }
            if (type != kDebugTypeCodeView || info.codeview) {
                continue;
            }
            const uint32_t size = get<uint32_t>(entries, o + 16);
            const uint32_t rva = get<uint32_t>(entries, o + 20);
            if (rva == 0 || size < 24 || size > kMaxCodeViewSize) {
                continue;
            }
            const auto cv = read(rva, size);
            if (cv.size() < 24 || get<uint32_t>(cv, 0) != kCodeViewRsds) {
                continue;
            }
            CodeViewRecord rec;
            std::memcpy(rec.guid.data(), cv.data() + 4, 16);
            rec.age = get<uint32_t>(cv, 20);
            for (size_t c = 24; c < cv.size() && cv[c] != 0; ++c) {
                rec.pdb_name.push_back(static_cast<char>(cv[c]));
            }
            info.codeview = std::move(rec);
        }
    }
    return info;
}

Result<ImageReader> file_image_reader(std::vector<uint8_t> file) {
    auto bytes = std::make_shared<const std::vector<uint8_t>>(std::move(file));
    auto raw = [bytes](uint32_t off, uint32_t size) -> std::vector<uint8_t> {
        if (off >= bytes->size()) {
            return {};
        }
        const size_t n = std::min<size_t>(size, bytes->size() - off);
        return std::vector<uint8_t>(bytes->begin() + off, bytes->begin() + off + n);
    };
    auto hdr = read_pe_image(raw);
    if (!hdr) {
        return tl::unexpected(hdr.error());
    }
    auto sections = std::make_shared<const std::vector<PeSection>>(hdr->sections);
    const uint32_t headers = hdr->size_of_headers;
    return ImageReader(
        [bytes, sections, headers, raw](uint32_t rva, uint32_t size) -> std::vector<uint8_t> {
            for (const auto& s : *sections) {
                if (rva >= s.virtual_address && rva - s.virtual_address < s.raw_size) {
                    const uint32_t within = rva - s.virtual_address;
                    const uint32_t n = std::min(size, s.raw_size - within);
                    const uint64_t off = uint64_t{s.raw_pointer} + within;
                    if (off > UINT32_MAX) {
                        return {};
                    }
                    return raw(static_cast<uint32_t>(off), n);
                }
            }
            if (rva < headers) {
                return raw(rva, std::min(size, headers - rva));
            }
            return {};
        });
}

} // namespace kdcart::engine
