#include "cli/CodeCommands.h"
#include "cli/DataModel.h"
#include "cli/Repl.h"
#include "cli/format/Format.h"

namespace kdcart::cli {

bool run_code_command(engine::Debugger& dbg, Output& out, std::string_view word,
                      std::string_view args) {
    if (word == "uf") {
        cmd_unassemble_function(dbg, out, args);
    } else if (word == ".fnent") {
        cmd_function_entry(dbg, out, args);
    } else if (word == "!dh") {
        cmd_image_headers(dbg, out, args);
    } else if (word == "dx") {
        cmd_dx(dbg, out, args);
    } else {
        return false;
    }
    return true;
}

engine::UnwindMemory unwind_memory_of(engine::Debugger& dbg) {
    engine::UnwindMemory um;
    um.read = [&dbg](uint64_t a, uint32_t size) -> std::vector<uint8_t> {
        auto blk = dbg.read_virtual(a, size);
        if (!blk) {
            return {};
        }
        blk->bytes.resize(blk->readable_prefix());
        return blk->bytes;
    };
    return um;
}

std::optional<uint64_t> module_base_of(engine::Debugger& dbg, uint64_t address) {
    auto mods = dbg.modules();
    if (!mods) {
        return std::nullopt;
    }
    for (const auto& m : *mods) {
        if (address >= m.base && address - m.base < m.size) {
            return m.base;
        }
    }
    return std::nullopt;
}

std::string nearest_symbols_line(engine::Debugger& dbg, uint64_t address) {
    auto n = dbg.symbols().near(address);
    if (!n) {
        return {};
    }
    std::string s;
    if (n->below) {
        engine::SymbolMatch m{n->below->module, n->below->name, n->below->address, n->displacement};
        s += "(" + format_address(n->below->address) + ")   " + format_symbol(m);
    }
    if (n->above) {
        s += std::string(n->below ? "   |  " : "") + "(" + format_address(n->above->address) +
             ")   " + n->above->module + "!" + n->above->name;
    }
    return s;
}

} // namespace kdcart::cli
