#include "engine/ObjectState.h"
#include "engine/Debugger.h"
#include "engine/HexText.h"

#include <cctype>
#include <cinttypes>
#include <cstdio>
#include <unordered_set>

namespace kdcart::engine {

namespace {

bool iequal(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) {
        return false;
    }
    for (size_t i = 0; i < a.size(); ++i) {
        if (std::tolower(static_cast<unsigned char>(a[i])) !=
            std::tolower(static_cast<unsigned char>(b[i]))) {
            return false;
        }
    }
    return true;
}

} // namespace

Result<uint64_t> ObjectState::type_object(uint8_t index) {
    auto table = m_dbg.lookup_symbol("nt", "ObTypeIndexTable");
    if (!table) {
        return make_error(Errc::NotFound, "nt!ObTypeIndexTable is not in the symbols");
    }
    auto entry = m_types.read_u64(*table + uint64_t{index} * 8);
    if (!entry) {
        return make_error(Errc::Unreadable, "nt!ObTypeIndexTable[" + std::to_string(index) +
                                                "] at " + hex(*table + index * 8ull) +
                                                " is not readable");
    }
    if (*entry == 0 || *entry == 1) {
        return make_error(Errc::InvalidArgument,
                          "type index " + std::to_string(index) + " is not an object type");
    }
    return *entry;
}

Result<ObjectHeaderInfo> ObjectState::header(uint64_t object) {
    auto body = m_types.offset("_OBJECT_HEADER", "Body");
    if (!body) {
        return tl::unexpected(body.error());
    }
    ObjectHeaderInfo info;
    info.object = object;
    info.header = object - *body;
    auto raw_index = m_types.read_unsigned(info.header, "_OBJECT_HEADER", "TypeIndex");
    auto pointers = m_types.read_signed(info.header, "_OBJECT_HEADER", "PointerCount");
    auto handles = m_types.read_signed(info.header, "_OBJECT_HEADER", "HandleCount");
    auto mask = m_types.read_unsigned(info.header, "_OBJECT_HEADER", "InfoMask");
    if (!raw_index || !pointers || !handles || !mask) {
        return make_error(Errc::Unreadable, hex(object) + " is not an object: its header at " +
                                                hex(info.header) + " is not readable");
    }
    uint8_t index = static_cast<uint8_t>(*raw_index);
    // Windows 10 encodes the type index with nt!ObHeaderCookie and the header's address.
    if (auto cookie_at = m_dbg.lookup_symbol("nt", "ObHeaderCookie")) {
        if (auto c = m_types.read_bytes(*cookie_at, 1)) {
            index = static_cast<uint8_t>(index ^ (*c)[0] ^ ((info.header >> 8) & 0xFF));
        }
    }
    info.type_index = index;
    info.pointer_count = *pointers;
    info.handle_count = *handles;
    info.info_mask = static_cast<uint8_t>(*mask);
    auto type = type_object(index);
    if (!type) {
        return make_error(Errc::InvalidArgument,
                          hex(object) + " is not an object: " + type.error().message);
    }
    info.type_object = *type;
    // The type object must say it is that type (OBJECT_TYPE.Index) and have a name.
    if (m_types.has_field("_OBJECT_TYPE", "Index")) {
        auto own = m_types.read_unsigned(*type, "_OBJECT_TYPE", "Index");
        if (!own || *own != index) {
            return make_error(Errc::InvalidArgument,
                              hex(object) + " is not an object: the type object " + hex(*type) +
                                  " of its header's type index " + std::to_string(index) +
                                  " does not carry that index");
        }
    }
    auto name = m_types.read_unicode_string(*type, "_OBJECT_TYPE", "Name", 256);
    if (!name) {
        return make_error(Errc::InvalidArgument, hex(object) +
                                                     " is not an object: the name of "
                                                     "its type object " +
                                                     hex(*type) + " is not readable");
    }
    info.type_name = *name;
    // The name information sits below the header (and below the creator information, when
    // the object has one): InfoMask bit 1, bit 0.
    if ((info.info_mask & 0x02) != 0) {
        auto name_size = m_types.size_of("_OBJECT_HEADER_NAME_INFO");
        uint64_t below = name_size ? *name_size : 0;
        if ((info.info_mask & 0x01) != 0) {
            if (auto creator = m_types.size_of("_OBJECT_HEADER_CREATOR_INFO")) {
                below += *creator;
            }
        }
        if (name_size) {
            const uint64_t name_info = info.header - below;
            if (auto n = m_types.read_unicode_string(name_info, "_OBJECT_HEADER_NAME_INFO", "Name",
                                                     512)) {
                info.name = *n;
            }
            if (auto d = m_types.read_pointer(name_info, "_OBJECT_HEADER_NAME_INFO", "Directory")) {
                info.directory = *d;
            }
        }
    }
    return info;
}

Result<DirectoryListing> ObjectState::directory(uint64_t dir) {
    auto buckets = m_types.field("_OBJECT_DIRECTORY", "HashBuckets");
    if (!buckets) {
        return tl::unexpected(buckets.error());
    }
    const uint64_t count =
        buckets->info->kind == PdbType::Kind::Array && buckets->size >= 8 ? buckets->size / 8 : 37;
    auto chain = m_types.offset("_OBJECT_DIRECTORY_ENTRY", "ChainLink");
    auto obj = m_types.offset("_OBJECT_DIRECTORY_ENTRY", "Object");
    if (!chain || !obj) {
        return tl::unexpected(!chain ? chain.error() : obj.error());
    }
    DirectoryListing out;
    std::unordered_set<uint64_t> seen;
    for (uint32_t b = 0; b < count; ++b) {
        auto entry = m_types.read_u64(dir + buckets->offset + b * 8ull);
        if (!entry) {
            out.broken = "hash bucket " + std::to_string(b) + " at " +
                         hex(dir + buckets->offset + b * 8ull) + " is not readable";
            return out;
        }
        uint64_t e = *entry;
        while (e != 0) {
            if (!seen.insert(e).second) {
                out.broken = "bucket " + std::to_string(b) + "'s chain loops at entry " + hex(e);
                break;
            }
            if (out.entries.size() >= k_max_directory_entries) {
                out.broken =
                    "more than " + std::to_string(k_max_directory_entries) + " entries: stopped";
                return out;
            }
            auto o = m_types.read_u64(e + *obj);
            auto next = m_types.read_u64(e + *chain);
            if (!o || !next) {
                out.broken =
                    "bucket " + std::to_string(b) + "'s entry " + hex(e) + " is not readable";
                break;
            }
            DirectoryEntry de;
            de.bucket = b;
            de.object = *o;
            if (auto h = header(*o)) {
                de.type_name = h->type_name;
                de.name = h->name.value_or("");
            } else {
                de.type_name = "?";
                de.name = "<" + h.error().message + ">";
            }
            out.entries.push_back(std::move(de));
            e = *next;
        }
    }
    return out;
}

Result<uint64_t> ObjectState::root_directory() {
    uint64_t at = 0;
    if (auto info = m_dbg.target_info(); info && info->kddata_found) {
        at = info->kddata.ObpRootDirectoryObject;
    }
    if (at == 0) {
        at = m_dbg.lookup_symbol("nt", "ObpRootDirectoryObject").value_or(0);
    }
    if (at == 0) {
        return make_error(Errc::NotFound, "the root directory is unknown (no "
                                          "KDDEBUGGER_DATA64.ObpRootDirectoryObject, no "
                                          "nt!ObpRootDirectoryObject)");
    }
    auto root = m_types.read_u64(at);
    if (!root || *root == 0) {
        return make_error(Errc::Unreadable,
                          "nt!ObpRootDirectoryObject at " + hex(at) + " is not readable or 0");
    }
    return *root;
}

Result<uint64_t> ObjectState::lookup(std::string_view path) {
    if (path.empty() || path[0] != '\\') {
        return make_error(Errc::InvalidArgument, "an object path starts with '\\'");
    }
    auto current = root_directory();
    if (!current) {
        return current;
    }
    std::string walked;
    size_t i = 1;
    while (i < path.size()) {
        size_t j = path.find('\\', i);
        if (j == std::string_view::npos) {
            j = path.size();
        }
        const std::string_view part = path.substr(i, j - i);
        i = j + 1;
        if (part.empty()) {
            continue;
        }
        auto h = header(*current);
        if (!h) {
            return tl::unexpected(h.error());
        }
        if (h->type_name != "Directory") {
            return make_error(Errc::NotFound, (walked.empty() ? std::string("\\") : walked) +
                                                  " is a " + h->type_name +
                                                  " object, not a directory");
        }
        auto list = directory(*current);
        if (!list) {
            return tl::unexpected(list.error());
        }
        std::optional<uint64_t> found;
        for (const auto& e : list->entries) {
            if (iequal(e.name, part)) {
                found = e.object;
                break;
            }
        }
        walked += "\\" + std::string(part);
        if (!found) {
            return make_error(Errc::NotFound,
                              walked + " is not in the object directory" +
                                  (list->broken ? " (" + *list->broken + ")" : std::string()));
        }
        current = *found;
    }
    return current;
}

} // namespace kdcart::engine
