#include "hw/PeImage.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>

namespace kdcart::hw {

namespace {

constexpr uint16_t IMAGE_DOS_SIGNATURE = 0x5A4D;    // "MZ"
constexpr uint32_t IMAGE_NT_SIGNATURE = 0x00004550; // "PE\0\0"
constexpr uint16_t IMAGE_NT_OPTIONAL_HDR64_MAGIC = 0x20B;
constexpr size_t FILE_HEADER_SIZE = 20;
constexpr size_t SECTION_HEADER_SIZE = 40;
constexpr size_t OPTIONAL_HEADER64_MIN = 112; // up to and excluding the data directories
constexpr uint32_t DIRECTORY_EXPORT = 0;
constexpr uint32_t DIRECTORY_IMPORT = 1;
constexpr uint32_t DIRECTORY_BASERELOC = 5;
constexpr uint32_t DIRECTORY_DEBUG = 6;
constexpr uint8_t IMAGE_REL_BASED_ABSOLUTE = 0;
constexpr uint8_t IMAGE_REL_BASED_HIGHLOW = 3;
constexpr uint8_t IMAGE_REL_BASED_DIR64 = 10;
constexpr uint32_t IMAGE_DEBUG_TYPE_CODEVIEW = 2;
constexpr uint32_t CODEVIEW_RSDS = 0x53445352; // "RSDS"
constexpr size_t MAX_IMPORTS_PER_MODULE = 65536;
constexpr size_t MAX_IMPORT_MODULES = 1024;
constexpr uint32_t PAGE = 0x1000;

template <class T> std::optional<T> load(std::span<const uint8_t> bytes, size_t offset) {
    if (offset > bytes.size() || bytes.size() - offset < sizeof(T)) {
        return std::nullopt;
    }
    T v;
    std::memcpy(&v, bytes.data() + offset, sizeof(T));
    return v;
}

template <class T> void store(std::vector<uint8_t>& bytes, size_t offset, T value) {
    std::memcpy(bytes.data() + offset, &value, sizeof(T));
}

tl::unexpected<Error> malformed(const std::string& what) {
    return make_error(Errc::Malformed, "PE image: " + what);
}

bool ranges_overlap(uint64_t a, uint64_t a_len, uint64_t b, uint64_t b_len) {
    return a < b + b_len && b < a + a_len;
}

} // namespace

Result<PeImage> PeImage::load_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        return make_error(Errc::NotFound, "cannot open " + path.string());
    }
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                               std::istreambuf_iterator<char>());
    auto image = parse(std::move(bytes));
    if (!image) {
        return make_error(image.error().code,
                          path.filename().string() + ": " + image.error().message);
    }
    return image;
}

Result<PeImage> PeImage::parse(std::vector<uint8_t> file) {
    PeImage image;
    image.m_file = std::move(file);
    if (auto r = image.parse_headers(); !r) {
        return tl::unexpected(r.error());
    }
    return image;
}

Result<void> PeImage::parse_headers() {
    std::span<const uint8_t> f = m_file;
    auto dos_magic = load<uint16_t>(f, 0);
    if (!dos_magic || *dos_magic != IMAGE_DOS_SIGNATURE) {
        return malformed("no MZ signature");
    }
    auto lfanew = load<uint32_t>(f, 0x3C);
    if (!lfanew) {
        return malformed("truncated DOS header");
    }
    size_t nt = *lfanew;
    auto signature = load<uint32_t>(f, nt);
    if (!signature || *signature != IMAGE_NT_SIGNATURE) {
        return malformed("no PE signature");
    }
    size_t fh = nt + 4;
    auto machine = load<uint16_t>(f, fh + 0);
    auto section_count = load<uint16_t>(f, fh + 2);
    auto timestamp = load<uint32_t>(f, fh + 4);
    auto optional_size = load<uint16_t>(f, fh + 16);
    auto characteristics = load<uint16_t>(f, fh + 18);
    if (!machine || !section_count || !timestamp || !optional_size || !characteristics) {
        return malformed("truncated file header");
    }
    m_machine = *machine;
    m_time_date_stamp = *timestamp;
    m_characteristics = *characteristics;

    size_t opt = fh + FILE_HEADER_SIZE;
    if (*optional_size < OPTIONAL_HEADER64_MIN || opt + *optional_size > f.size()) {
        return malformed("optional header too small or truncated");
    }
    auto magic = load<uint16_t>(f, opt);
    if (*magic != IMAGE_NT_OPTIONAL_HDR64_MAGIC) {
        return malformed("not PE32+ (optional header magic " + std::to_string(*magic) + ")");
    }
    m_entry_point_rva = *load<uint32_t>(f, opt + 16);
    m_image_base = *load<uint64_t>(f, opt + 24);
    m_image_base_offset = opt + 24;
    uint32_t section_alignment = *load<uint32_t>(f, opt + 32);
    m_size_of_image = *load<uint32_t>(f, opt + 56);
    m_size_of_headers = *load<uint32_t>(f, opt + 60);
    m_checksum = *load<uint32_t>(f, opt + 64);
    m_checksum_offset = opt + 64;
    m_subsystem = *load<uint16_t>(f, opt + 68);
    uint32_t directory_count = *load<uint32_t>(f, opt + 108);
    if (section_alignment != PAGE) {
        return malformed("section alignment is not 4 KiB");
    }
    if (m_size_of_image == 0 || m_size_of_image > 0x10000000 || m_size_of_image % PAGE != 0) {
        return malformed("bad SizeOfImage");
    }
    if (m_size_of_headers == 0 || m_size_of_headers > m_size_of_image) {
        return malformed("bad SizeOfHeaders");
    }
    size_t max_directories = (*optional_size - OPTIONAL_HEADER64_MIN) / 8;
    directory_count = static_cast<uint32_t>(std::min<size_t>(directory_count, max_directories));
    auto directory = [&](uint32_t index) -> std::pair<uint32_t, uint32_t> {
        if (index >= directory_count) {
            return {0, 0};
        }
        size_t at = opt + OPTIONAL_HEADER64_MIN + index * 8;
        return {*load<uint32_t>(f, at), *load<uint32_t>(f, at + 4)};
    };

    size_t sections_at = opt + *optional_size;
    if (sections_at + size_t{*section_count} * SECTION_HEADER_SIZE > f.size()) {
        return malformed("truncated section table");
    }
    for (uint16_t i = 0; i < *section_count; i++) {
        size_t at = sections_at + i * SECTION_HEADER_SIZE;
        PeSection s;
        char name[9] = {};
        std::memcpy(name, f.data() + at, 8);
        s.name = name;
        s.virtual_size = *load<uint32_t>(f, at + 8);
        s.virtual_address = *load<uint32_t>(f, at + 12);
        s.raw_size = *load<uint32_t>(f, at + 16);
        s.raw_offset = *load<uint32_t>(f, at + 20);
        s.characteristics = *load<uint32_t>(f, at + 36);
        if (s.virtual_size == 0) {
            s.virtual_size = s.raw_size;
        }
        if (s.virtual_address % PAGE != 0 || s.virtual_address < m_size_of_headers ||
            uint64_t{s.virtual_address} + s.virtual_size > m_size_of_image) {
            return malformed("section " + s.name + " lies outside the image");
        }
        if (s.raw_size != 0 && uint64_t{s.raw_offset} + s.raw_size > f.size()) {
            return malformed("section " + s.name + " raw data past the end of the file");
        }
        for (const auto& other : m_sections) {
            if (ranges_overlap(s.virtual_address, s.virtual_size, other.virtual_address,
                               other.virtual_size)) {
                return malformed("sections " + other.name + " and " + s.name + " overlap");
            }
        }
        m_sections.push_back(std::move(s));
    }
    if (m_entry_point_rva >= m_size_of_image) {
        return malformed("entry point outside the image");
    }

    if (auto [rva, size] = directory(DIRECTORY_EXPORT); rva != 0 && size != 0) {
        if (auto r = parse_exports(rva, size); !r) {
            return r;
        }
    }
    if (auto [rva, size] = directory(DIRECTORY_IMPORT); rva != 0 && size != 0) {
        if (auto r = parse_imports(rva, size); !r) {
            return r;
        }
    }
    if (auto [rva, size] = directory(DIRECTORY_BASERELOC); rva != 0 && size != 0) {
        if (auto r = parse_relocations(rva, size); !r) {
            return r;
        }
    }
    if (auto [rva, size] = directory(DIRECTORY_DEBUG); rva != 0 && size != 0) {
        parse_debug_directory(rva, size);
    }
    return {};
}

std::optional<size_t> PeImage::rva_to_offset(uint32_t rva, size_t length) const {
    if (uint64_t{rva} + length <= m_size_of_headers) {
        if (uint64_t{rva} + length <= m_file.size()) {
            return rva;
        }
        return std::nullopt;
    }
    for (const auto& s : m_sections) {
        if (rva >= s.virtual_address &&
            uint64_t{rva} + length <= uint64_t{s.virtual_address} + s.raw_size) {
            return size_t{s.raw_offset} + (rva - s.virtual_address);
        }
    }
    return std::nullopt;
}

std::optional<std::string> PeImage::string_at_rva(uint32_t rva, size_t max_length) const {
    auto offset = rva_to_offset(rva, 1);
    if (!offset) {
        return std::nullopt;
    }
    std::string out;
    for (size_t i = *offset; i < m_file.size() && out.size() < max_length; i++) {
        if (m_file[i] == 0) {
            return out;
        }
        out.push_back(static_cast<char>(m_file[i]));
    }
    return std::nullopt;
}

Result<void> PeImage::parse_exports(uint32_t rva, uint32_t size) {
    std::span<const uint8_t> f = m_file;
    auto at = rva_to_offset(rva, 40);
    if (!at) {
        return malformed("export directory outside the file");
    }
    uint32_t name_rva = *load<uint32_t>(f, *at + 12);
    uint32_t ordinal_base = *load<uint32_t>(f, *at + 16);
    uint32_t function_count = *load<uint32_t>(f, *at + 20);
    uint32_t name_count = *load<uint32_t>(f, *at + 24);
    uint32_t functions_rva = *load<uint32_t>(f, *at + 28);
    uint32_t names_rva = *load<uint32_t>(f, *at + 32);
    uint32_t ordinals_rva = *load<uint32_t>(f, *at + 36);
    if (function_count > 65536 || name_count > function_count) {
        return malformed("implausible export counts");
    }
    m_export_dll_name = string_at_rva(name_rva).value_or("");
    auto functions = rva_to_offset(functions_rva, size_t{function_count} * 4);
    auto names = rva_to_offset(names_rva, size_t{name_count} * 4);
    auto ordinals = rva_to_offset(ordinals_rva, size_t{name_count} * 2);
    if ((function_count != 0 && !functions) || (name_count != 0 && (!names || !ordinals))) {
        return malformed("export tables outside the file");
    }
    std::vector<std::string> names_by_index(function_count);
    for (uint32_t i = 0; i < name_count; i++) {
        uint32_t n_rva = *load<uint32_t>(f, *names + i * 4);
        uint16_t index = *load<uint16_t>(f, *ordinals + i * 2);
        auto name = string_at_rva(n_rva);
        if (!name || index >= function_count) {
            return malformed("bad export name entry");
        }
        names_by_index[index] = *name;
    }
    for (uint32_t i = 0; i < function_count; i++) {
        uint32_t f_rva = *load<uint32_t>(f, *functions + i * 4);
        if (f_rva == 0) {
            continue;
        }
        PeExport e;
        e.name = names_by_index[i];
        e.ordinal = ordinal_base + i;
        if (f_rva >= rva && f_rva < rva + size) {
            e.forwarder = string_at_rva(f_rva).value_or("");
        } else if (f_rva >= m_size_of_image) {
            return malformed("export " + e.name + " outside the image");
        } else {
            e.rva = f_rva;
        }
        m_exports.push_back(std::move(e));
    }
    return {};
}

Result<void> PeImage::parse_imports(uint32_t rva, uint32_t size) {
    (void)size;
    std::span<const uint8_t> f = m_file;
    for (size_t d = 0; d < MAX_IMPORT_MODULES; d++) {
        auto at = rva_to_offset(rva + static_cast<uint32_t>(d * 20), 20);
        if (!at) {
            return malformed("import descriptor outside the file");
        }
        uint32_t lookup_rva = *load<uint32_t>(f, *at + 0);
        uint32_t name_rva = *load<uint32_t>(f, *at + 12);
        uint32_t iat_rva = *load<uint32_t>(f, *at + 16);
        if (lookup_rva == 0 && name_rva == 0 && iat_rva == 0) {
            return {};
        }
        PeImportModule module;
        auto dll = string_at_rva(name_rva);
        if (!dll || iat_rva == 0) {
            return malformed("bad import descriptor");
        }
        module.dll = *dll;
        uint32_t thunks = lookup_rva != 0 ? lookup_rva : iat_rva;
        for (size_t i = 0;; i++) {
            if (i >= MAX_IMPORTS_PER_MODULE) {
                return malformed("unterminated import table for " + module.dll);
            }
            auto t_at = rva_to_offset(thunks + static_cast<uint32_t>(i * 8), 8);
            if (!t_at) {
                return malformed("import thunks outside the file");
            }
            uint64_t thunk = *load<uint64_t>(f, *t_at);
            if (thunk == 0) {
                break;
            }
            PeImportSymbol sym;
            sym.iat_rva = iat_rva + static_cast<uint32_t>(i * 8);
            if (uint64_t{sym.iat_rva} + 8 > m_size_of_image) {
                return malformed("IAT outside the image");
            }
            if ((thunk & (1ULL << 63)) != 0) {
                sym.by_ordinal = true;
                sym.ordinal = static_cast<uint16_t>(thunk & 0xFFFF);
            } else {
                auto hint_at = rva_to_offset(static_cast<uint32_t>(thunk), 2);
                auto name = string_at_rva(static_cast<uint32_t>(thunk) + 2);
                if (thunk > 0xFFFFFFFF || !hint_at || !name) {
                    return malformed("bad import-by-name entry in " + module.dll);
                }
                sym.hint = *load<uint16_t>(f, *hint_at);
                sym.name = *name;
            }
            module.symbols.push_back(std::move(sym));
        }
        m_imports.push_back(std::move(module));
    }
    return malformed("too many import descriptors");
}

Result<void> PeImage::parse_relocations(uint32_t rva, uint32_t size) {
    std::span<const uint8_t> f = m_file;
    auto start = rva_to_offset(rva, size);
    if (!start) {
        return malformed("relocation directory outside the file");
    }
    size_t at = *start;
    size_t end = *start + size;
    while (at + 8 <= end) {
        uint32_t page_rva = *load<uint32_t>(f, at);
        uint32_t block_size = *load<uint32_t>(f, at + 4);
        if (block_size < 8 || at + block_size > end || block_size % 2 != 0) {
            return malformed("bad relocation block");
        }
        for (size_t e = at + 8; e + 2 <= at + block_size; e += 2) {
            uint16_t entry = *load<uint16_t>(f, e);
            uint8_t type = static_cast<uint8_t>(entry >> 12);
            uint32_t target = page_rva + (entry & 0xFFF);
            if (type == IMAGE_REL_BASED_ABSOLUTE) {
                continue;
            }
            if (type != IMAGE_REL_BASED_DIR64 && type != IMAGE_REL_BASED_HIGHLOW) {
                return make_error(Errc::Unsupported,
                                  "PE image: relocation type " + std::to_string(type));
            }
            size_t width = type == IMAGE_REL_BASED_DIR64 ? 8 : 4;
            if (uint64_t{target} + width > m_size_of_image) {
                return malformed("relocation target outside the image");
            }
            m_relocations.push_back({target, type});
        }
        at += block_size;
    }
    return {};
}

void PeImage::parse_debug_directory(uint32_t rva, uint32_t size) {
    std::span<const uint8_t> f = m_file;
    for (uint32_t off = 0; off + 28 <= size; off += 28) {
        auto at = rva_to_offset(rva + off, 28);
        if (!at) {
            return;
        }
        uint32_t type = *load<uint32_t>(f, *at + 12);
        uint32_t data_size = *load<uint32_t>(f, *at + 16);
        uint32_t data_offset = *load<uint32_t>(f, *at + 24);
        if (type != IMAGE_DEBUG_TYPE_CODEVIEW || data_size < 24 ||
            uint64_t{data_offset} + data_size > f.size()) {
            continue;
        }
        if (*load<uint32_t>(f, data_offset) != CODEVIEW_RSDS) {
            continue;
        }
        PeCodeView cv;
        std::memcpy(cv.guid.data(), f.data() + data_offset + 4, 16);
        cv.age = *load<uint32_t>(f, data_offset + 20);
        for (size_t i = data_offset + 24; i < data_offset + data_size && f[i] != 0; i++) {
            cv.pdb_name.push_back(static_cast<char>(f[i]));
        }
        m_codeview = std::move(cv);
        return;
    }
}

std::optional<uint32_t> PeImage::export_rva(std::string_view name) const {
    for (const auto& e : m_exports) {
        if (e.name == name && e.forwarder.empty()) {
            return e.rva;
        }
    }
    return std::nullopt;
}

std::optional<uint32_t> PeImage::export_rva_by_ordinal(uint32_t ordinal) const {
    for (const auto& e : m_exports) {
        if (e.ordinal == ordinal && e.forwarder.empty()) {
            return e.rva;
        }
    }
    return std::nullopt;
}

uint32_t PeImage::page_characteristics(uint32_t rva) const {
    uint32_t page = rva & ~(PAGE - 1);
    if (page < m_size_of_headers) {
        return IMAGE_SCN_MEM_READ;
    }
    uint32_t flags = 0;
    for (const auto& s : m_sections) {
        uint64_t s_end =
            (uint64_t{s.virtual_address} + s.virtual_size + PAGE - 1) & ~uint64_t{PAGE - 1};
        if (page >= s.virtual_address && page < s_end) {
            flags |= s.characteristics &
                     (IMAGE_SCN_MEM_EXECUTE | IMAGE_SCN_MEM_READ | IMAGE_SCN_MEM_WRITE);
        }
    }
    return flags;
}

Result<std::vector<uint8_t>> PeImage::map(uint64_t base, const ImportResolver& resolve) const {
    if (base % 0x10000 != 0) {
        return make_error(Errc::InvalidArgument, "PE image: base not 64 KiB aligned");
    }
    std::vector<uint8_t> image(m_size_of_image, 0);
    size_t header_bytes = std::min<size_t>(m_size_of_headers, m_file.size());
    std::memcpy(image.data(), m_file.data(), header_bytes);
    for (const auto& s : m_sections) {
        size_t n = std::min(s.raw_size, s.virtual_size);
        if (n != 0) {
            std::memcpy(image.data() + s.virtual_address, m_file.data() + s.raw_offset, n);
        }
    }
    uint64_t delta = base - m_image_base;
    for (const auto& r : m_relocations) {
        if (r.type == IMAGE_REL_BASED_DIR64) {
            store<uint64_t>(image, r.rva, *load<uint64_t>(image, r.rva) + delta);
        } else {
            store<uint32_t>(image, r.rva,
                            *load<uint32_t>(image, r.rva) + static_cast<uint32_t>(delta));
        }
    }
    if (m_image_base_offset + 8 <= image.size()) {
        store<uint64_t>(image, m_image_base_offset, base);
    }
    for (const auto& module : m_imports) {
        for (const auto& sym : module.symbols) {
            auto address = resolve(module.dll, sym);
            if (!address) {
                std::string what = sym.by_ordinal ? "#" + std::to_string(sym.ordinal) : sym.name;
                return make_error(Errc::NotFound, "unresolved import " + module.dll + "!" + what);
            }
            store<uint64_t>(image, sym.iat_rva, *address);
        }
    }
    return image;
}

uint32_t PeImage::compute_checksum(std::span<const uint8_t> file, size_t checksum_offset) {
    uint64_t sum = 0;
    for (size_t i = 0; i < file.size(); i += 2) {
        uint32_t word = file[i];
        if (i + 1 < file.size()) {
            word |= uint32_t{file[i + 1]} << 8;
        }
        if (i == checksum_offset || i == checksum_offset + 2) {
            word = 0;
        }
        sum += word;
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    sum = (sum & 0xFFFF) + (sum >> 16);
    return static_cast<uint32_t>(sum + file.size());
}

} // namespace kdcart::hw
