#include "engine/KernelTypes.h"
#include "engine/Debugger.h"
#include "engine/HexText.h"

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <unordered_set>

namespace kdcart::engine {

namespace {

void put_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
}

} // namespace

std::string utf16_to_utf8(const uint8_t* data, size_t bytes) {
    std::string out;
    out.reserve(bytes / 2);
    for (size_t i = 0; i + 1 < bytes; i += 2) {
        uint32_t u = data[i] | (uint32_t{data[i + 1]} << 8);
        if (u >= 0xD800 && u < 0xDC00 && i + 3 < bytes) {
            const uint32_t lo = data[i + 2] | (uint32_t{data[i + 3]} << 8);
            if (lo >= 0xDC00 && lo < 0xE000) {
                put_utf8(out, 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00));
                i += 2;
                continue;
            }
        }
        if (u >= 0xD800 && u < 0xE000) {
            u = 0xFFFD;
        }
        put_utf8(out, u);
    }
    return out;
}

KernelTypes::KernelTypes(const PdbTypes& types, Reader read, std::string module)
    : m_types(&types), m_read(std::move(read)), m_module(std::move(module)) {}

Result<KernelTypes> KernelTypes::of_nt(Debugger& dbg) {
    auto ref = dbg.symbols().find_type("nt", "_EPROCESS");
    if (!ref || ref->types == nullptr) {
        return make_error(Errc::NotFound, k_bad_symbols);
    }
    return KernelTypes(*ref->types, [&dbg](uint64_t address, size_t size) {
        return dbg.read_virtual(address, size);
    });
}

std::string KernelTypes::qualified(std::string_view type) const {
    return m_module + "!" + std::string(type);
}

Result<KernelField> KernelTypes::field(std::string_view type_name, std::string_view path) const {
    auto index = m_types->find(type_name);
    if (!index) {
        return make_error(Errc::NotFound, std::string(k_bad_symbols) + " (" + qualified(type_name) +
                                              " is not in the symbols)");
    }
    KernelField out;
    out.type = *index;
    const std::string whole(path);
    // Each step: strip modifiers, then find the member in the struct/union.
    auto resolve = [this](uint32_t t) -> const PdbType* {
        const PdbType* p = m_types->get(t);
        for (int guard = 0; p != nullptr && p->kind == PdbType::Kind::Modifier && guard < 8;
             ++guard) {
            p = m_types->get(p->element);
        }
        return p;
    };
    out.info = resolve(out.type);
    while (!path.empty()) {
        const size_t dot = path.find('.');
        const std::string_view name = path.substr(0, dot);
        path = dot == std::string_view::npos ? std::string_view{} : path.substr(dot + 1);
        const PdbType* t = out.info;
        if (t == nullptr || (t->kind != PdbType::Kind::Struct && t->kind != PdbType::Kind::Union)) {
            return make_error(Errc::NotFound, qualified(type_name) + "." + whole +
                                                  ": not a structure before " + std::string(name));
        }
        const PdbField* found = nullptr;
        for (const auto& f : t->fields) {
            if (!f.is_static && f.name == name) {
                found = &f;
                break;
            }
        }
        if (found == nullptr) {
            return make_error(Errc::NotFound, std::string(k_bad_symbols) + " (" +
                                                  qualified(type_name) + " has no field " + whole +
                                                  ")");
        }
        out.offset += found->offset;
        out.type = found->type;
        out.info = m_types->get(found->type);
        out.bit_length = 0;
        out.bit_position = 0;
        if (out.info != nullptr && out.info->kind == PdbType::Kind::Bitfield) {
            out.bit_length = out.info->bit_length;
            out.bit_position = out.info->bit_position;
            out.type = out.info->element;
            out.info = m_types->get(out.type);
        }
        out.info = resolve(out.type);
    }
    if (out.info == nullptr) {
        return make_error(Errc::NotFound, qualified(type_name) + "." + whole + ": unknown type");
    }
    out.size = out.info->size;
    if (out.info->kind == PdbType::Kind::Pointer && out.size == 0) {
        out.size = 8;
    }
    if (out.info->kind == PdbType::Kind::Enum && out.size == 0) {
        if (const PdbType* u = resolve(out.info->element)) {
            out.size = u->size;
        }
        if (out.size == 0) {
            out.size = 4;
        }
    }
    return out;
}

Result<uint64_t> KernelTypes::offset(std::string_view type, std::string_view path) const {
    auto f = field(type, path);
    if (!f) {
        return tl::unexpected(f.error());
    }
    return f->offset;
}

std::optional<uint64_t> KernelTypes::try_offset(std::string_view type,
                                                std::string_view path) const {
    auto f = field(type, path);
    if (!f) {
        return std::nullopt;
    }
    return f->offset;
}

Result<uint64_t> KernelTypes::size_of(std::string_view type) const {
    auto f = field(type, "");
    if (!f) {
        return tl::unexpected(f.error());
    }
    if (f->size == 0) {
        return make_error(Errc::NotFound, qualified(type) + " has no size in the symbols");
    }
    return f->size;
}

Result<std::vector<uint8_t>> KernelTypes::read_bytes(uint64_t address, size_t size) const {
    auto block = m_read(address, size);
    if (!block) {
        return tl::unexpected(block.error());
    }
    if (!block->all_valid()) {
        return make_error(Errc::Unreadable, "memory at " + hex(address + block->readable_prefix()) +
                                                " is not readable");
    }
    return std::move(block->bytes);
}

Result<uint64_t> KernelTypes::read_u64(uint64_t address) const {
    auto b = read_bytes(address, 8);
    if (!b) {
        return tl::unexpected(b.error());
    }
    uint64_t v = 0;
    std::memcpy(&v, b->data(), 8);
    return v;
}

Result<uint64_t> KernelTypes::read_unsigned(uint64_t object, std::string_view type,
                                            std::string_view path) const {
    auto f = field(type, path);
    if (!f) {
        return tl::unexpected(f.error());
    }
    const auto k = f->info->kind;
    if (k != PdbType::Kind::Base && k != PdbType::Kind::Pointer && k != PdbType::Kind::Enum) {
        return make_error(Errc::InvalidArgument,
                          qualified(type) + "." + std::string(path) + " is not a scalar");
    }
    if (f->size == 0 || f->size > 8) {
        return make_error(Errc::InvalidArgument, qualified(type) + "." + std::string(path) +
                                                     " has an unexpected size " +
                                                     std::to_string(f->size));
    }
    auto b = read_bytes(object + f->offset, f->size);
    if (!b) {
        return make_error(b.error().code, "cannot read " + qualified(type) + "." +
                                              std::string(path) + " at " + hex(object + f->offset));
    }
    uint64_t v = 0;
    std::memcpy(&v, b->data(), f->size);
    if (f->bit_length != 0) {
        v >>= f->bit_position;
        if (f->bit_length < 64) {
            v &= (uint64_t{1} << f->bit_length) - 1;
        }
    }
    return v;
}

Result<int64_t> KernelTypes::read_signed(uint64_t object, std::string_view type,
                                         std::string_view path) const {
    auto f = field(type, path);
    if (!f) {
        return tl::unexpected(f.error());
    }
    auto v = read_unsigned(object, type, path);
    if (!v) {
        return tl::unexpected(v.error());
    }
    const unsigned bits = f->bit_length != 0 ? f->bit_length : static_cast<unsigned>(f->size * 8);
    if (bits >= 64) {
        return static_cast<int64_t>(*v);
    }
    const uint64_t sign = uint64_t{1} << (bits - 1);
    return static_cast<int64_t>((*v ^ sign) - sign);
}

Result<uint64_t> KernelTypes::read_pointer(uint64_t object, std::string_view type,
                                           std::string_view path) const {
    auto f = field(type, path);
    if (!f) {
        return tl::unexpected(f.error());
    }
    if (f->info->kind != PdbType::Kind::Pointer && f->size != 8) {
        return make_error(Errc::InvalidArgument,
                          qualified(type) + "." + std::string(path) + " is not a pointer");
    }
    return read_unsigned(object, type, path);
}

Result<std::string> KernelTypes::read_unicode_string_at(uint64_t address, size_t max_chars) const {
    auto length = read_unsigned(address, "_UNICODE_STRING", "Length");
    auto buffer = read_pointer(address, "_UNICODE_STRING", "Buffer");
    if (!length) {
        return tl::unexpected(length.error());
    }
    if (!buffer) {
        return tl::unexpected(buffer.error());
    }
    size_t bytes = *length & ~uint64_t{1};
    if (bytes == 0) {
        return std::string();
    }
    bytes = std::min(bytes, max_chars * 2);
    auto block = m_read(*buffer, bytes);
    if (!block) {
        return tl::unexpected(block.error());
    }
    const size_t readable = block->readable_prefix() & ~size_t{1};
    if (readable < bytes) {
        return make_error(Errc::Unreadable, "the string's buffer at " + hex(*buffer) +
                                                " is not readable past " + hex(*buffer + readable));
    }
    return utf16_to_utf8(block->bytes.data(), bytes);
}

Result<std::string> KernelTypes::read_unicode_string(uint64_t object, std::string_view type,
                                                     std::string_view path,
                                                     size_t max_chars) const {
    auto off = offset(type, path);
    if (!off) {
        return tl::unexpected(off.error());
    }
    return read_unicode_string_at(object + *off, max_chars);
}

Result<std::string> KernelTypes::read_char_array(uint64_t object, std::string_view type,
                                                 std::string_view path) const {
    auto f = field(type, path);
    if (!f) {
        return tl::unexpected(f.error());
    }
    const uint64_t size = std::min<uint64_t>(f->size == 0 ? 16 : f->size, 4096);
    auto block = m_read(object + f->offset, size);
    if (!block) {
        return tl::unexpected(block.error());
    }
    std::string out;
    for (size_t i = 0; i < size && block->valid[i] && block->bytes[i] != 0; ++i) {
        out.push_back(static_cast<char>(block->bytes[i]));
    }
    if (out.empty() && !block->valid[0]) {
        return make_error(Errc::Unreadable, "cannot read " + qualified(type) + "." +
                                                std::string(path) + " at " +
                                                hex(object + f->offset));
    }
    return out;
}

ListWalk KernelTypes::walk_list(uint64_t head, size_t bound) const {
    ListWalk w;
    auto first = read_u64(head);
    if (!first) {
        w.broken = "the list head at " + hex(head) + " is not readable";
        w.broken_at = head;
        return w;
    }
    std::unordered_set<uint64_t> seen{head};
    uint64_t prev = head;
    uint64_t entry = *first;
    while (entry != head) {
        if (entry == 0) {
            w.broken = "the entry at " + hex(prev) + " has a null Flink";
            w.broken_at = prev;
            return w;
        }
        if (w.entries.size() >= bound) {
            w.broken = "more than " + std::to_string(bound) + " entries: the walk stopped at " +
                       hex(entry);
            w.broken_at = entry;
            return w;
        }
        if (!seen.insert(entry).second) {
            w.broken = "the list loops back to " + hex(entry) + " (not to its head " + hex(head) +
                       ") after " + hex(prev);
            w.broken_at = prev;
            return w;
        }
        auto next = read_u64(entry);
        if (!next) {
            w.broken =
                "the entry at " + hex(entry) + " (Flink of " + hex(prev) + ") is not readable";
            w.broken_at = entry;
            return w;
        }
        w.entries.push_back(entry);
        prev = entry;
        entry = *next;
    }
    return w;
}

Result<ListWalk> KernelTypes::walk_field_list(uint64_t object, std::string_view type,
                                              std::string_view head_path,
                                              std::string_view entry_type,
                                              std::string_view entry_path, size_t bound) const {
    auto head = offset(type, head_path);
    if (!head) {
        return tl::unexpected(head.error());
    }
    auto link = offset(entry_type, entry_path);
    if (!link) {
        return tl::unexpected(link.error());
    }
    ListWalk w = walk_list(object + *head, bound);
    for (auto& e : w.entries) {
        e -= *link;
    }
    return w;
}

} // namespace kdcart::engine
