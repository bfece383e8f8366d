#include "engine/DumpTarget.h"

#include "engine/AddressTranslation.h"

#include <cstring>

namespace kdcart::engine {

using namespace protocol;

namespace {
constexpr uint64_t kPage = 4096;

Error read_only() {
    return Error{Errc::Unsupported, "a dump file is read-only", 0};
}
} // namespace

Result<std::unique_ptr<DumpTarget>> DumpTarget::open(const std::string& path) {
    auto file = DumpFile::open(path);
    if (!file) {
        return tl::unexpected(file.error());
    }
    if ((*file)->machine_type() != 0x8664) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "machine type %#x is not x64 (0x8664)",
                      (*file)->machine_type());
        return make_error(Errc::Unsupported, buf);
    }
    std::unique_ptr<DumpTarget> t(new DumpTarget(std::move(*file)));
    t->locate_processors();
    return t;
}

DumpTarget::DumpTarget(std::unique_ptr<DumpFile> file) : m_file(std::move(file)) {
    m_num_processors = m_file->number_processors();
    if (m_num_processors == 0 || m_num_processors > 4096) {
        m_num_processors = 1;
    }
}

std::optional<uint64_t> DumpTarget::read_va_u64(uint64_t va) {
    auto r = read_virtual(va, 8);
    if (!r || r->bytes.size() != 8) {
        return std::nullopt;
    }
    uint64_t v = 0;
    std::memcpy(&v, r->bytes.data(), 8);
    return v;
}

std::optional<uint64_t> DumpTarget::prcb(uint16_t cpu) {
    if (!m_kdbg_ok || m_kdbg.KiProcessorBlock == 0) {
        return std::nullopt;
    }
    auto p = read_va_u64(m_kdbg.KiProcessorBlock + 8ull * cpu);
    if (!p || *p == 0) {
        return std::nullopt;
    }
    return p;
}

void DumpTarget::locate_processors() {
    const uint64_t kdbg = m_file->kd_debugger_data_block();
    if (kdbg != 0) {
        auto r = read_virtual(kdbg, sizeof(KDDEBUGGER_DATA64));
        if (r && r->bytes.size() >= sizeof(DBGKD_DEBUG_DATA_HEADER64)) {
            auto hdr = kd_decode<DBGKD_DEBUG_DATA_HEADER64>(r->bytes);
            if (hdr && hdr->OwnerTag == KDBG_TAG) {
                auto bytes = r->bytes;
                const size_t valid = std::min<size_t>(bytes.size(), hdr->Size);
                bytes.resize(sizeof(KDDEBUGGER_DATA64), 0);
                std::fill(bytes.begin() + static_cast<long>(valid), bytes.end(), 0);
                m_kdbg = *kd_decode<KDDEBUGGER_DATA64>(bytes);
                m_kdbg_ok = true;
            }
        }
    }
    const CONTEXT& crash = m_file->context();
    for (uint16_t cpu = 0; cpu < m_num_processors && cpu < 256; ++cpu) {
        auto p = prcb(cpu);
        if (!p) {
            continue;
        }
        std::optional<uint64_t> at;
        if (m_kdbg.OffsetPrcbContext != 0) {
            auto ptr = read_va_u64(*p + m_kdbg.OffsetPrcbContext);
            if (ptr && *ptr != 0) {
                at = ptr;
            }
        }
        if (!at && m_kdbg.OffsetPrcbProcStateContext != 0) {
            at = *p + m_kdbg.OffsetPrcbProcStateContext;
        }
        if (!at) {
            continue;
        }
        auto raw = read_virtual(*at, sizeof(CONTEXT));
        if (!raw || raw->bytes.size() != sizeof(CONTEXT)) {
            continue;
        }
        CONTEXT c = *kd_decode<CONTEXT>(raw->bytes);
        m_contexts[cpu] = c;
        if (c.Rip == crash.Rip && c.Rsp == crash.Rsp) {
            m_crash_processor = cpu;
        }
    }
    m_processor = m_crash_processor;
}

Result<DBGKD_GET_VERSION64> DumpTarget::version() {
    auto v = kd_zero<DBGKD_GET_VERSION64>();
    v.MajorVersion = static_cast<uint16_t>(m_file->major_version() & 0xFF);
    v.MinorVersion = static_cast<uint16_t>(m_file->build());
    v.ProtocolVersion = 6;
    v.MachineType = static_cast<uint16_t>(m_file->machine_type());
    v.Flags = DBGKD_VERS_FLAG_PTR64 | DBGKD_VERS_FLAG_MP;
    v.PsLoadedModuleList = m_file->ps_loaded_module_list();
    v.KernBase = m_kdbg_ok ? m_kdbg.KernBase : 0;
    v.DebuggerDataList = 0;
    return v;
}

Result<ReadResult> DumpTarget::read_physical(uint64_t address, uint32_t size) {
    ReadResult out;
    out.bytes.reserve(size);
    uint64_t cur = address;
    const uint64_t end = address + size;
    while (cur < end && cur >= address) {
        auto page = m_file->page(cur / kPage);
        if (!page) {
            out.status = STATUS_UNSUCCESSFUL;
            break;
        }
        const uint64_t off = cur % kPage;
        const uint64_t n = std::min<uint64_t>(kPage - off, end - cur);
        out.bytes.insert(out.bytes.end(), page->begin() + static_cast<long>(off),
                         page->begin() + static_cast<long>(off + n));
        cur += n;
    }
    return out;
}

Result<ReadResult> DumpTarget::read_virtual(uint64_t address, uint32_t size) {
    ReadResult out;
    out.bytes.reserve(size);
    const uint64_t dtb = m_file->directory_table_base();
    auto phys = [this](uint64_t pa) -> std::optional<uint64_t> {
        auto page = m_file->page(pa / kPage);
        if (!page || pa % kPage > kPage - 8) {
            return std::nullopt;
        }
        uint64_t v = 0;
        std::memcpy(&v, page->data() + pa % kPage, 8);
        return v;
    };
    uint64_t cur = address;
    const uint64_t end = address + size;
    while (cur < end && cur >= address) {
        auto t = translate_va(cur, dtb, phys);
        if (t && m_decode_transition && t->state == PageState::NotPresent && t->level == 1 &&
            (t->pte & 0x800) != 0 && (t->pte & 0x400) == 0) {
            t->state = PageState::Present; // transition: the data is still in that frame
            t->physical = (t->pte & 0x000FFFFFFFFFF000ull) | (cur & 0xFFF);
        }
        if (!t || t->state != PageState::Present) {
            out.status = STATUS_UNSUCCESSFUL;
            break;
        }
        auto page = m_file->page(t->physical / kPage);
        if (!page) {
            out.status = STATUS_UNSUCCESSFUL;
            break;
        }
        const uint64_t off = t->physical % kPage;
        const uint64_t n = std::min<uint64_t>(kPage - off, end - cur);
        out.bytes.insert(out.bytes.end(), page->begin() + static_cast<long>(off),
                         page->begin() + static_cast<long>(off + n));
        cur += n;
    }
    return out;
}

Result<uint32_t> DumpTarget::write_virtual(uint64_t, std::span<const uint8_t>) {
    return tl::unexpected(read_only());
}

Result<uint32_t> DumpTarget::write_physical(uint64_t, std::span<const uint8_t>) {
    return tl::unexpected(read_only());
}

Result<CONTEXT> DumpTarget::get_context(uint16_t cpu) {
    if (cpu >= m_num_processors) {
        return make_error(Errc::InvalidArgument, "no processor " + std::to_string(cpu));
    }
    if (cpu == m_crash_processor) {
        return m_file->context();
    }
    if (auto it = m_contexts.find(cpu); it != m_contexts.end()) {
        return it->second;
    }
    return make_error(Errc::Unreadable, "the dump holds no context for processor " +
                                            std::to_string(cpu));
}

Result<void> DumpTarget::set_context(uint16_t, const CONTEXT&) {
    return tl::unexpected(read_only());
}

Result<ReadResult> DumpTarget::read_control_space(uint16_t cpu, uint64_t index, uint32_t size) {
    if (cpu >= m_num_processors) {
        return make_error(Errc::InvalidArgument, "no processor " + std::to_string(cpu));
    }
    auto p = prcb(cpu);
    switch (index) {
    case AMD64_DEBUG_CONTROL_SPACE_KPRCB:
    case AMD64_DEBUG_CONTROL_SPACE_KPCR: {
        // Both answer with an address (the KPRCB; the KPCR holds it at its end).
        ReadResult r;
        if (p) {
            uint64_t v = index == AMD64_DEBUG_CONTROL_SPACE_KPRCB
                             ? *p
                             : *p - (m_kdbg.OffsetPcrContainedPrcb ? m_kdbg.OffsetPcrContainedPrcb
                                                                   : 0);
            r.bytes.resize(std::min<uint32_t>(size, 8));
            std::memcpy(r.bytes.data(), &v, r.bytes.size());
        }
        return r;
    }
    case AMD64_DEBUG_CONTROL_SPACE_KSPECIAL: {
        KSPECIAL_REGISTERS special{};
        bool found = false;
        if (p && m_kdbg.OffsetPrcbProcStateSpecialReg != 0) {
            auto raw = read_virtual(*p + m_kdbg.OffsetPrcbProcStateSpecialReg,
                                    sizeof(KSPECIAL_REGISTERS));
            if (raw && raw->bytes.size() == sizeof(KSPECIAL_REGISTERS)) {
                special = *kd_decode<KSPECIAL_REGISTERS>(raw->bytes);
                found = true;
            }
        }
        if (!found || special.Cr3 == 0) {
            special.Cr3 = m_file->directory_table_base();
        }
        ReadResult r;
        r.bytes.resize(std::min<uint32_t>(size, sizeof special));
        std::memcpy(r.bytes.data(), &special, r.bytes.size());
        return r;
    }
    default:
        return make_error(Errc::Unsupported, "control space " + std::to_string(index) +
                                                 " is not in a dump");
    }
}

Result<uint32_t> DumpTarget::write_control_space(uint16_t, uint64_t, std::span<const uint8_t>) {
    return tl::unexpected(read_only());
}

Result<uint64_t> DumpTarget::page_directory(uint16_t) {
    return m_file->directory_table_base();
}

Result<void> DumpTarget::set_current_processor(uint16_t cpu) {
    if (cpu >= m_num_processors) {
        return make_error(Errc::InvalidArgument,
                          "Processor " + std::to_string(cpu) + " does not exist (" +
                              std::to_string(m_num_processors) + " processors)");
    }
    m_processor = cpu;
    return {};
}

StopEvent DumpTarget::stop_event() const {
    StopEvent ev;
    ev.kind = StopKind::Dump;
    ev.processor = m_processor;
    ev.num_processors = m_num_processors;
    ev.pc = m_file->context().Rip;
    const auto& rec = m_file->exception();
    ev.exception_code = rec.ExceptionCode;
    ev.exception_address = rec.ExceptionAddress;
    ev.bugcheck_code = m_file->bugcheck_code();
    auto params = m_file->bugcheck_parameters();
    for (int i = 0; i < 4; ++i) {
        ev.bugcheck_params[i] = params[static_cast<size_t>(i)];
    }
    return ev;
}

std::string DumpTarget::kind_description() const {
    switch (m_file->dump_type()) {
    case 1:
        return "Kernel Complete Dump File: Full address space is available";
    case 5:
        return "Kernel Bitmap Full Dump File: Full address space is available";
    case 6:
        return "Kernel Bitmap Dump File: Kernel address space is available, User address space "
               "may not be available.";
    default:
        return "Kernel Dump File";
    }
}

} // namespace kdcart::engine
