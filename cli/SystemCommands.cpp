// !pfn, !vm, !sysinfo machineid, !locks, .cache.
#include "cli/SystemCommands.h"
#include "cli/Repl.h"
#include "cli/SystemFormat.h"
#include "cli/TextUtil.h"
#include "cli/format/Format.h"
#include "engine/DumpTarget.h"
#include "engine/KernelTypes.h"
#include "engine/MmState.h"
#include "engine/ResourceLocks.h"
#include "engine/Smbios.h"

#include <cinttypes>
#include <cstdio>

namespace kdcart::cli {

namespace {

class SystemCommands {
  public:
    SystemCommands(engine::Debugger& dbg, Output& out) : m_dbg(dbg), m_out(out) {}

    bool run(std::string_view word, std::string_view args) {
        if (word == "!pfn") {
            pfn(args);
        } else if (word == "!vm") {
            vm();
        } else if (word == "!sysinfo") {
            sysinfo(args);
        } else if (word == "!locks") {
            locks();
        } else if (word == ".cache") {
            cache(args);
        } else {
            return false;
        }
        return true;
    }

  private:
    void print(std::string_view s) { m_out.write(s); }
    void error(std::string_view s) {
        std::string t(s);
        if (t.empty() || t.back() != '\n') {
            t.push_back('\n');
        }
        m_out.write(t);
    }

    void pfn(std::string_view args) {
        if (trim(args).empty()) {
            error("Usage: !pfn PageFrameNumber | AddressOfPfnEntry");
            return;
        }
        auto v = m_dbg.evaluate(trim(args));
        if (!v) {
            error(v.error().message);
            return;
        }
        auto kt = engine::KernelTypes::of_nt(m_dbg);
        if (!kt) {
            error(kt.error().message);
            return;
        }
        engine::MmState mm(m_dbg);
        auto e = mm.pfn(*kt, *v);
        if (!e) {
            error(e.error().message);
            return;
        }
        print(format_pfn(*e));
    }

    void vm() {
        engine::MmState mm(m_dbg);
        auto v = mm.vm();
        if (!v) {
            error("Unable to read the memory counters: " + v.error().message);
            return;
        }
        print(format_vm(*v));
    }

    // !sysinfo machineid: the SMBIOS table nt keeps (nt!WmipSMBiosTablePhysicalAddress,
    // nt!WmipSMBiosTableLength), read physically.
    void sysinfo(std::string_view args) {
        if (lower(trim(args)) != "machineid") {
            error("Usage: !sysinfo machineid   (the other !sysinfo reports are not supported)");
            return;
        }
        auto pa_at = m_dbg.lookup_symbol("nt", "WmipSMBiosTablePhysicalAddress");
        auto len_at = m_dbg.lookup_symbol("nt", "WmipSMBiosTableLength");
        if (!pa_at || !len_at) {
            error("Machine ID Information is not available: nt!WmipSMBiosTablePhysicalAddress / "
                  "nt!WmipSMBiosTableLength are not in the kernel's symbols, so the SMBIOS table "
                  "cannot be located");
            return;
        }
        auto pa = m_dbg.memory().read_u64(*pa_at);
        auto len = m_dbg.read_virtual(*len_at, 4);
        if (!pa || !len || !len->all_valid() || *pa == 0) {
            error("Machine ID Information is not available: the kernel holds no SMBIOS table "
                  "address (nt!WmipSMBiosTablePhysicalAddress is 0 or unreadable)");
            return;
        }
        const uint32_t size = uint32_t{len->bytes[0]} | uint32_t{len->bytes[1]} << 8 |
                              uint32_t{len->bytes[2]} << 16 | uint32_t{len->bytes[3]} << 24;
        if (size == 0 || size > 0x100000) {
            error("Machine ID Information is not available: nt!WmipSMBiosTableLength is " +
                  std::to_string(size));
            return;
        }
        auto table = m_dbg.read_physical(*pa, size);
        if (!table || table->readable_prefix() == 0) {
            error("Machine ID Information is not available: the SMBIOS table at physical " +
                  hex_digits(*pa) + " is not readable" +
                  (m_dbg.dump() != nullptr ? " (not in this dump)" : ""));
            return;
        }
        const size_t n = table->readable_prefix();
        print(format_machine_id(
            engine::parse_smbios(std::span<const uint8_t>(table->bytes.data(), n)), *pa, size));
    }

    void locks() {
        auto kt = engine::KernelTypes::of_nt(m_dbg);
        if (!kt) {
            error(kt.error().message);
            return;
        }
        engine::ResourceLocks rl(m_dbg, *kt);
        auto scan = rl.scan();
        if (!scan) {
            error("!locks: " + scan.error().message);
            return;
        }
        print(format_locks(*scan, [this](uint64_t a) -> std::optional<std::string> {
            if (auto s = m_dbg.symbolize(a); s && !s->name.empty() && s->displacement == 0) {
                return format_symbol(*s);
            }
            return std::nullopt;
        }));
    }

    // .cache [decodeptes|nodecodeptes]: whether virtual reads of a dump decode transition PTEs
    // (the page is still in physical memory, on a standby/modified list). On a live target the
    // target's kernel translates every virtual read, so the setting only applies to dumps.
    void cache(std::string_view args) {
        const std::string a = lower(trim(args));
        auto* dump = m_dbg.dump();
        if (a == "decodeptes" || a == "nodecodeptes") {
            if (dump == nullptr) {
                error(".cache " + a +
                      ": on a live target the target's kernel translates "
                      "virtual addresses; the setting applies to dump files");
                return;
            }
            dump->set_decode_transition_ptes(a == "decodeptes");
            m_dbg.memory().invalidate();
        } else if (!a.empty()) {
            error("Usage: .cache [decodeptes|nodecodeptes]   (other .cache options are not "
                  "supported)");
            return;
        }
        if (dump != nullptr) {
            print(dump->decode_transition_ptes() ? "  Will decode PTEs (transition PTEs read "
                                                   "from their page frame)\n"
                                                 : "  Will not decode PTEs\n");
        } else {
            print("  Live target: virtual reads are translated by the target (the memory cache "
                  "holds what was read since the last stop)\n");
        }
    }

    engine::Debugger& m_dbg;
    Output& m_out;
};

} // namespace

bool run_system_command(engine::Debugger& dbg, Output& out, std::string_view word,
                        std::string_view args) {
    SystemCommands c(dbg, out);
    return c.run(word, args);
}

} // namespace kdcart::cli
