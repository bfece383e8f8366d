#include "engine/Symbols.h"
#include "engine/PeExportLookup.h"
#include "engine/Wildcard.h"

#include <algorithm>
#include <charconv>

namespace kdcart::engine {

struct Symbols::LoadedPdb {
    std::unique_ptr<PdbFile> file;
    SymbolIndex index;
    bool private_symbols = false;
};

struct Symbols::ModuleSymbols {
    uint32_t size = 0;
    Module::SymbolState state = Module::SymbolState::Deferred;
    std::string symbol_file;
    std::optional<PeImageInfo> image;
    std::shared_ptr<LoadedPdb> pdb; // when state is Pdb / PrivatePdb
    SymbolIndex exports;            // when state is Exports
    // Loaded for one stop line only (Symbols::symbolize on a module not loaded yet): the image's
    // headers without the section table or debug directory, and no export index, just the
    // answers found so far, by RVA. Anything else completes it first (Symbols::complete).
    bool partial = false;
    std::map<uint32_t, std::optional<ExportSymbol>> quick;
    const SymbolIndex& index() const { return pdb ? pdb->index : exports; }
};

namespace {

constexpr uint32_t kMaxHeaderRead = 16 * 1024 * 1024;

SymbolKind kind_of(PdbSymbol::Kind k) {
    switch (k) {
    case PdbSymbol::Kind::Function:
        return SymbolKind::Function;
    case PdbSymbol::Kind::Data:
        return SymbolKind::Data;
    case PdbSymbol::Kind::PublicFunction:
        return SymbolKind::PublicFunction;
    case PdbSymbol::Kind::Public:
        break;
    }
    return SymbolKind::Public;
}

const char* kEmptyPathBanner =
    "*********************************************************************\n"
    "* Symbols can not be loaded because symbol path is not initialized. *\n"
    "*                                                                   *\n"
    "* The Symbol Path can be set by:                                    *\n"
    "*   using the _NT_SYMBOL_PATH environment variable.                 *\n"
    "*   using the -y <symbol_path> argument when starting the debugger. *\n"
    "*   using .sympath and .sympath+                                    *\n"
    "*********************************************************************";

} // namespace

Symbols::Symbols(Memory& memory, Modules& modules) : m_memory(memory), m_modules(modules) {}
Symbols::~Symbols() = default;

void Symbols::say(const std::string& text) {
    if (m_sink) {
        m_sink(text);
    } else {
        m_messages.push_back(text);
    }
}

void Symbols::log(const std::string& text) {
    if (m_noisy) {
        say(text);
    }
}

std::vector<std::string> Symbols::take_messages() {
    std::vector<std::string> out;
    out.swap(m_messages);
    return out;
}

ImageReader Symbols::image_reader(const Module& m) {
    const uint64_t base = m.base;
    const uint32_t size = m.size;
    return [this, base, size](uint32_t rva, uint32_t n) -> std::vector<uint8_t> {
        if (n > kMaxHeaderRead || rva >= size) {
            return {};
        }
        auto blk = m_memory.read_virtual(base + rva, std::min<uint32_t>(n, size - rva));
        if (!blk) {
            return {};
        }
        blk->bytes.resize(blk->readable_prefix());
        return blk->bytes;
    };
}

std::shared_ptr<Symbols::LoadedPdb> Symbols::open_pdb(const Module& m, const CodeViewRecord& cv,
                                                      const PeImageInfo& image,
                                                      std::string& why_not) {
    const SymbolFileRequest request{cv.pdb_file_name(), cv.store_key()};
    const std::string key = request.store_key + "/" + lower_ascii(request.file_name);
    if (auto it = m_pdbs.find(key); it != m_pdbs.end()) {
        return it->second;
    }
    if (m_path.empty()) {
        why_not = "the symbol path is empty";
        return nullptr;
    }
    std::unique_ptr<PdbFile> accepted;
    SymbolFileCheck check = [&](const std::string& path) -> std::optional<std::string> {
        auto pdb = PdbFile::open(path);
        if (!pdb) {
            return "unreadable pdb (" + pdb.error().message + ")";
        }
        if (!(*pdb)->matches(cv)) {
            return "mismatched pdb: " + (*pdb)->mismatch_reason(cv);
        }
        accepted = std::move(*pdb);
        return std::nullopt;
    };
    std::vector<std::string> probes;
    auto found = m_server.find(m_path, request, check, probes);
    for (const auto& p : probes) {
        log(p);
    }
    if (!found || !accepted) {
        why_not = found ? "no usable file" : found.error().message;
        return nullptr;
    }
    auto syms = accepted->read_symbols(image.sections);
    if (!syms) {
        log("DBGHELP: " + *found + " - " + syms.error().message);
        why_not = syms.error().message;
        return nullptr;
    }
    auto loaded = std::make_shared<LoadedPdb>();
    std::vector<SymbolIndex::Input> in;
    in.reserve(syms->size());
    for (auto& s : *syms) {
        in.push_back({std::move(s.name), s.rva, s.size, s.type_index, kind_of(s.kind)});
    }
    loaded->index.build(std::move(in));
    loaded->private_symbols = accepted->has_private_symbols();
    loaded->file = std::move(accepted);
    (void)m;
    m_pdbs[key] = loaded;
    return loaded;
}

void Symbols::load(const Module& m, ModuleSymbols& ms, std::optional<uint32_t> quick_rva) {
    // For one address without a symbol path (and not noisy), the CodeView record and the section
    // table change nothing that is shown: no PDB is looked for. They are read when the module is
    // completed.
    const bool light = quick_rva && m_path.empty() && !m_noisy;
    auto image =
        read_pe_image(image_reader(m), light ? PeReadParts{false, false, false} : PeReadParts{});
    if (image) {
        ms.image = *image;
    }
    std::string why_not;
    if (light && image) {
        why_not = "the symbol path is empty";
    } else if (image && image->codeview) {
        if (auto pdb = open_pdb(m, *image->codeview, *image, why_not)) {
            ms.pdb = pdb;
            ms.state =
                pdb->private_symbols ? Module::SymbolState::PrivatePdb : Module::SymbolState::Pdb;
            ms.symbol_file = pdb->file->path();
            log("DBGHELP: " + m.name + " - " +
                (pdb->private_symbols ? "private symbols & lines" : "public symbols"));
            log("        " + ms.symbol_file);
            return;
        }
    } else {
        why_not = image ? "the image names no PDB (no CodeView record)"
                        : "the image headers are not readable (" + image.error().message + ")";
    }
    // The export table, and WinDbg's words for it.
    if (m_path.empty() && !m_warned_empty_path) {
        m_warned_empty_path = true;
        say(kEmptyPathBanner);
    }
    log("DBGHELP: " + m.name + " - " + why_not);
    // One address (a stop line): only the export table's parts that name it; the whole table
    // when that fails (read_pe_exports then says why).
    bool found_quick = false;
    if (quick_rva && image && image->pe32_plus) {
        const PeDataDirectory* d = image->directory(k_dir_export);
        auto hit =
            find_pe_export(m.base, d ? ExportDirectorySpan{d->rva, d->size} : ExportDirectorySpan{},
                           *quick_rva, image_reader(m));
        if (hit) {
            ms.partial = true;
            ms.quick[*quick_rva] = std::move(*hit);
            found_quick = true;
        }
    }
    if (!found_quick) {
        auto ex = image ? read_pe_exports(m.base, image_reader(m))
                        : Result<std::vector<ExportSymbol>>(tl::unexpected(image.error()));
        if (!ex) {
            ms.state = Module::SymbolState::None;
            ms.symbol_file.clear();
            say("*** ERROR: Module load completed but symbols could not be loaded for " +
                m.file_name);
            return;
        }
        index_exports(m, ms, std::move(*ex));
    }
    ms.state = Module::SymbolState::Exports;
    ms.symbol_file = m.file_name;
    if (image && image->checksum == 0) {
        say("*** WARNING: Unable to verify checksum for " + m.file_name);
    }
    say("*** ERROR: Symbol file could not be found.  Defaulted to export symbols for " +
        m.file_name + " - ");
    log("DBGHELP: " + m.name + " - export symbols");
}

void Symbols::index_exports(const Module& m, ModuleSymbols& ms, std::vector<ExportSymbol> ex) {
    std::vector<SymbolIndex::Input> in;
    in.reserve(ex.size());
    for (auto& e : ex) {
        in.push_back({std::move(e.name), static_cast<uint32_t>(e.address - m.base), 0, 0,
                      SymbolKind::Export});
    }
    ms.exports.build(std::move(in));
}

void Symbols::complete(const Module& m, ModuleSymbols& ms) {
    if (!ms.partial || !m_memory.accessible()) {
        return;
    }
    ms.partial = false;
    ms.quick.clear();
    if (auto image = read_pe_image(image_reader(m))) {
        ms.image = *image;
    }
    auto ex = read_pe_exports(m.base, image_reader(m));
    if (!ex) {
        // The parts the stop line needed were readable, the rest is not (hostile memory).
        ms.state = Module::SymbolState::None;
        ms.symbol_file.clear();
        m_modules.set_symbol_state(m.base, ms.state);
        say("*** ERROR: Module load completed but symbols could not be loaded for " + m.file_name);
        return;
    }
    index_exports(m, ms, std::move(*ex));
}

Symbols::ModuleSymbols* Symbols::ensure(const Module& m, std::optional<uint32_t> quick_rva) {
    auto it = m_by_base.find(m.base);
    if (it != m_by_base.end() && it->second->size == m.size &&
        it->second->state != Module::SymbolState::Deferred) {
        ModuleSymbols* ms = it->second.get();
        if (ms->partial && !(quick_rva && ms->quick.count(*quick_rva))) {
            complete(m, *ms);
        }
        return ms;
    }
    if (!m_memory.accessible()) {
        return it == m_by_base.end() ? nullptr : it->second.get(); // a running target
    }
    auto ms = std::make_unique<ModuleSymbols>();
    ms->size = m.size;
    load(m, *ms, quick_rva);
    auto* raw = ms.get();
    m_by_base[m.base] = std::move(ms);
    m_modules.set_symbol_state(m.base, raw->state);
    return raw;
}

SymbolInfo Symbols::info_of(const Module& m, const ModuleSymbols& ms, const SymbolEntry& e) const {
    SymbolInfo s;
    s.module = m.name;
    s.name = std::string(ms.index().name(e));
    s.address = m.base + e.rva;
    s.size = e.size;
    s.kind = e.kind;
    if (e.kind == SymbolKind::Export && ms.image && !ms.image->is_code(e.rva)) {
        s.kind = SymbolKind::Public; // an exported variable: no parameters to speak of
    }
    if (ms.pdb && e.type_index != 0) {
        auto types = ms.pdb->file->types();
        if (types) {
            const PdbType* t = (*types)->get(e.type_index);
            if (e.kind == SymbolKind::Function && t && t->kind == PdbType::Kind::Function) {
                std::vector<std::string> params;
                for (uint32_t p : t->params) {
                    params.push_back((*types)->c_name(p));
                }
                s.params = std::move(params);
            } else if (e.kind == SymbolKind::Data) {
                s.type_index = e.type_index;
            }
        }
    }
    return s;
}

std::optional<SymbolMatch> Symbols::symbolize(uint64_t address) {
    const Module* found = m_modules.find_by_address(address);
    if (!found) {
        return std::nullopt;
    }
    const Module m = *found; // ensure() may touch the list
    SymbolMatch match;
    match.module = m.name;
    match.address = m.base;
    match.displacement = address - m.base;
    const uint32_t rva = static_cast<uint32_t>(address - m.base);
    const ModuleSymbols* ms = ensure(m, rva);
    if (ms && ms->partial) {
        if (auto it = ms->quick.find(rva); it != ms->quick.end() && it->second) {
            match.name = it->second->name;
            match.address = it->second->address;
            match.displacement = address - match.address;
        }
    } else if (ms) {
        if (const SymbolEntry* e = ms->index().lookup(rva)) {
            match.name = std::string(ms->index().name(*e));
            match.address = m.base + e->rva;
            match.displacement = address - match.address;
        }
    }
    return match;
}

std::optional<uint64_t> Symbols::lookup(std::string_view module, std::string_view name) {
    const Module* found = m_modules.find_by_name(module);
    if (!found) {
        return std::nullopt;
    }
    const Module m = *found;
    const ModuleSymbols* ms = ensure(m);
    if (!ms) {
        return std::nullopt;
    }
    const auto hits = ms->index().find(name);
    if (hits.empty()) {
        return std::nullopt;
    }
    return m.base + hits.front()->rva;
}

std::vector<SymbolInfo> Symbols::search(std::string_view module_pattern,
                                        std::string_view name_pattern) {
    std::vector<SymbolInfo> out;
    if (!m_modules.known()) {
        return out;
    }
    const std::vector<Module> mods = *m_modules.known();
    for (const auto& m : mods) {
        if (!wildcard_match(module_pattern, m.name)) {
            continue;
        }
        const ModuleSymbols* ms = ensure(m);
        if (!ms) {
            continue;
        }
        std::vector<const SymbolEntry*> hits;
        ms->index().match(name_pattern, [&](const SymbolEntry& e) { hits.push_back(&e); });
        std::stable_sort(hits.begin(), hits.end(), [](const SymbolEntry* a, const SymbolEntry* b) {
            return a->rva < b->rva;
        });
        for (const auto* e : hits) {
            out.push_back(info_of(m, *ms, *e));
        }
    }
    return out;
}

std::optional<NearSymbols> Symbols::near(uint64_t address) {
    const Module* found = m_modules.find_by_address(address);
    if (!found) {
        return std::nullopt;
    }
    const Module m = *found;
    const ModuleSymbols* ms = ensure(m);
    if (!ms) {
        return std::nullopt;
    }
    const uint32_t rva = static_cast<uint32_t>(address - m.base);
    NearSymbols n;
    if (const SymbolEntry* e = ms->index().lookup(rva)) {
        n.below = info_of(m, *ms, *e);
        n.displacement = rva - e->rva;
        if (n.displacement == 0) {
            for (const auto* x : ms->index().at(rva)) {
                n.exact.push_back(info_of(m, *ms, *x));
            }
        }
    }
    if (const SymbolEntry* e = ms->index().next_after(rva)) {
        n.above = info_of(m, *ms, *e);
    }
    if (!n.below && !n.above) {
        return std::nullopt;
    }
    return n;
}

const PdbTypes* Symbols::types_of(uint64_t base) {
    const Module* found = m_modules.find_by_address(base);
    if (!found) {
        return nullptr;
    }
    const Module m = *found;
    ModuleSymbols* ms = ensure(m);
    if (!ms || !ms->pdb) {
        return nullptr;
    }
    auto t = ms->pdb->file->types();
    return t ? *t : nullptr;
}

std::optional<FrameScope> Symbols::frame_scope(uint64_t pc) {
    const Module* found = m_modules.find_by_address(pc);
    if (!found) {
        return std::nullopt;
    }
    const Module m = *found;
    ModuleSymbols* ms = ensure(m);
    if (!ms || !ms->pdb) {
        return std::nullopt;
    }
    const uint32_t rva = static_cast<uint32_t>(pc - m.base);
    const SymbolEntry* e = ms->pdb->index.lookup(rva);
    if (!e || e->kind != SymbolKind::Function || (e->size != 0 && rva - e->rva >= e->size)) {
        return std::nullopt;
    }
    auto frame = ms->pdb->file->function_frame(e->rva);
    if (!frame) {
        return std::nullopt;
    }
    FrameScope scope;
    scope.module = m.name;
    scope.function_address = m.base + e->rva;
    auto types = ms->pdb->file->types();
    scope.types = types ? *types : nullptr;
    scope.frame = std::move(*frame);
    return scope;
}

std::optional<TypeRef> Symbols::find_type(std::string_view module, std::string_view name) {
    if (!m_modules.known()) {
        return std::nullopt;
    }
    std::vector<Module> mods = *m_modules.known();
    if (!module.empty()) {
        const Module* m = m_modules.find_by_name(module);
        if (!m) {
            return std::nullopt;
        }
        mods = {*m};
    } else {
        // Modules whose symbols are already loaded first, then the rest in list order.
        std::stable_partition(mods.begin(), mods.end(), [this](const Module& m) {
            auto it = m_by_base.find(m.base);
            return it != m_by_base.end() && it->second->pdb;
        });
    }
    for (const auto& m : mods) {
        const PdbTypes* t = types_of(m.base);
        if (!t) {
            continue;
        }
        if (auto idx = t->find(name)) {
            return TypeRef{m.name, t, *idx};
        }
    }
    return std::nullopt;
}

std::vector<std::pair<std::string, std::string>>
Symbols::match_types(std::string_view module_pattern, std::string_view pattern) {
    std::vector<std::pair<std::string, std::string>> out;
    if (!m_modules.known()) {
        return out;
    }
    const std::vector<Module> mods = *m_modules.known();
    for (const auto& m : mods) {
        if (!wildcard_match(module_pattern, m.name)) {
            continue;
        }
        if (const PdbTypes* t = types_of(m.base)) {
            for (auto& n : t->match(pattern)) {
                out.emplace_back(m.name, std::move(n));
            }
        }
    }
    return out;
}

Symbols::ModuleState Symbols::state(uint64_t base) {
    ModuleState s;
    auto it = m_by_base.find(base);
    if (it != m_by_base.end()) {
        if (const Module* m = m_modules.find_by_address(base); m && it->second->partial) {
            complete(*m, *it->second);
        }
        s.state = it->second->state;
        s.symbol_file = it->second->symbol_file;
        s.image = it->second->image;
    }
    return s;
}

bool Symbols::loaded(uint64_t base) const {
    auto it = m_by_base.find(base);
    return it != m_by_base.end() && it->second->state != Module::SymbolState::Deferred;
}

void Symbols::annotate(std::vector<Module>& modules) const {
    for (auto& m : modules) {
        auto it = m_by_base.find(m.base);
        if (it != m_by_base.end() && it->second->size == m.size) {
            m.symbols = it->second->state;
            m.symbol_file = it->second->symbol_file;
        } else {
            m.symbols = Module::SymbolState::Deferred;
            m.symbol_file.clear();
        }
    }
}

Result<std::vector<std::string>> Symbols::reload(std::string_view module, bool force) {
    if (!m_modules.known()) {
        return make_error(Errc::Unsupported, "the module list is not known");
    }
    const std::vector<Module> mods = *m_modules.known();
    std::vector<std::string> touched;
    for (const auto& m : mods) {
        if (!module.empty() && lower_ascii(module) != m.name &&
            lower_ascii(module) != lower_ascii(m.file_name)) {
            continue;
        }
        m_by_base.erase(m.base);
        m_modules.set_symbol_state(m.base, Module::SymbolState::Deferred);
        if (force) {
            ensure(m);
        }
        touched.push_back(m.name);
    }
    if (!module.empty() && touched.empty()) {
        return make_error(Errc::NotFound, std::string(module) + " is not a loaded module");
    }
    return touched;
}

std::optional<SourceLocation> Symbols::visible_source_line(uint64_t address) {
    auto at = source_line(address);
    if (at && is_hidden_line(at->line)) {
        return std::nullopt;
    }
    return at;
}

std::optional<SourceLocation> Symbols::source_line(uint64_t address) {
    if (!m_load_lines) {
        return std::nullopt;
    }
    const Module* found = m_modules.find_by_address(address);
    if (!found) {
        return std::nullopt;
    }
    const Module m = *found;
    // Only a PDB has lines: a module known to have none (exports, or loaded for one stop line
    // without a symbol path) is not completed for nothing (its whole export table).
    const auto known = m_by_base.find(m.base);
    const bool loaded_already =
        known != m_by_base.end() && known->second->state != Module::SymbolState::Deferred;
    if (loaded_already ? !known->second->pdb : m_path.empty()) {
        return std::nullopt;
    }
    ModuleSymbols* ms = ensure(m);
    if (!ms || !ms->pdb) {
        return std::nullopt;
    }
    auto lines = ms->pdb->file->lines();
    if (!lines) {
        return std::nullopt;
    }
    auto at = (*lines)->find(static_cast<uint32_t>(address - m.base));
    if (!at) {
        return std::nullopt;
    }
    return SourceLocation{at->file, at->line, m.base + at->line_rva};
}

Result<uint64_t> Symbols::source_address(std::string_view spec, std::optional<uint64_t> pc) {
    if (!m_load_lines) {
        return make_error(Errc::InvalidArgument,
                          "Source line information is not loaded (.lines turns it on)");
    }
    if (!m_modules.known()) {
        return make_error(Errc::NotFound, "the module list is not known");
    }
    std::string_view module;
    std::string_view file = spec;
    if (const size_t bang = spec.find('!'); bang != std::string_view::npos) {
        module = spec.substr(0, bang);
        file = spec.substr(bang + 1);
    }
    std::optional<uint32_t> line;
    // The line number follows the last ':' (a drive letter's ':' is followed by a separator).
    const size_t colon = file.rfind(':');
    if (colon != std::string_view::npos && colon + 1 < file.size() && file[colon + 1] != '\\' &&
        file[colon + 1] != '/') {
        std::string_view digits = file.substr(colon + 1);
        file = file.substr(0, colon);
        int base = 10;
        if (digits.size() > 2 && digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X')) {
            base = 16;
            digits.remove_prefix(2);
        }
        uint64_t v = 0;
        const char* end = digits.data() + digits.size();
        const auto [stop, ec] = std::from_chars(digits.data(), end, v, base);
        if (ec != std::errc() || stop != end || v == 0 || v > 0xffffff) {
            return make_error(Errc::InvalidArgument,
                              "Bad line number in '" + std::string(spec) + "'");
        }
        line = static_cast<uint32_t>(v);
    } else if (!file.empty() && file.back() == ':') {
        file.remove_suffix(1);
    }
    std::string file_name(file);
    if (file_name.empty()) {
        // The file of the current pc.
        if (!pc) {
            return make_error(Errc::InvalidArgument, "No current source file");
        }
        auto here = source_line(*pc);
        if (!here) {
            return make_error(Errc::NotFound, "No source line information for the current pc");
        }
        file_name = here->file;
        if (module.empty()) {
            if (const Module* m = m_modules.find_by_address(*pc)) {
                module = m->name;
            }
        }
    }
    const std::vector<Module> mods = *m_modules.known();
    // Modules whose symbols are loaded first, then the others (loading them).
    for (int pass = 0; pass < 2; ++pass) {
        for (const auto& m : mods) {
            if (!module.empty() && lower_ascii(module) != lower_ascii(m.name)) {
                continue;
            }
            const bool is_loaded = loaded(m.base);
            if ((pass == 0) != is_loaded) {
                continue;
            }
            ModuleSymbols* ms = ensure(m);
            if (!ms || !ms->pdb) {
                continue;
            }
            auto lines = ms->pdb->file->lines();
            if (!lines) {
                continue;
            }
            const PdbLines& l = **lines;
            if (line) {
                if (auto a = l.address_of(file_name, *line)) {
                    return m.base + a->rva;
                }
            } else if (l.has_file(file_name)) {
                uint32_t lowest = 0xffffffff;
                for (const auto& e : l.entries()) {
                    if (e.rva < lowest && !is_hidden_line(e.line) &&
                        source_path_matches(l.files()[e.file], file_name)) {
                        lowest = e.rva;
                    }
                }
                return m.base + lowest;
            }
        }
    }
    return make_error(Errc::NotFound, "Couldn't resolve error at '`" + std::string(spec) + "`'");
}

void Symbols::forget(uint64_t base) {
    m_by_base.erase(base);
}

void Symbols::forget_all() {
    m_by_base.clear();
}

} // namespace kdcart::engine
