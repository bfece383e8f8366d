#pragma once
// Names for addresses and addresses for names, per module, in order of quality: a PDB that
// matches the image's CodeView record (GUID and age), found along the symbol path (directories,
// stores, symbol servers); otherwise the image's export table, and WinDbg's warning says so once.
// Each module is loaded lazily on first use (lm shows "(deferred)" until then); `.reload`
// defers every module again, `.reload /f` loads now. Opened PDBs are kept by file, so a module
// that unloads and loads again (or a target reboot) does not read its PDB twice.
// Returns data; notices and the `!sym noisy` probe log go to a sink the CLI sets.
#include "engine/Modules.h"
#include "engine/Pdb.h"
#include "engine/PeExports.h"
#include "engine/PeImage.h"
#include "engine/SymbolIndex.h"
#include "engine/SymbolServer.h"

#include <functional>
#include <map>
#include <memory>

namespace kdcart::engine {

// One symbol as the commands show it (x, ln).
struct SymbolInfo {
    std::string module;
    std::string name;
    uint64_t address = 0;
    uint32_t size = 0;
    SymbolKind kind = SymbolKind::Public;
    // Functions with type information: the parameter types ("unsigned int64"); nullopt when
    // the symbol file says nothing about them ("<no parameter info>").
    std::optional<std::vector<std::string>> params;
    // Data with type information: the type's index in the module's PdbTypes (0 = none).
    uint32_t type_index = 0;
};

// ln: the symbol at or below an address, the next one above, and the exact matches.
struct NearSymbols {
    std::optional<SymbolInfo> below;
    uint64_t displacement = 0;
    std::optional<SymbolInfo> above;
    std::vector<SymbolInfo> exact;
};

// A type found by `dt`: the module's type table and the index in it.
struct TypeRef {
    std::string module;
    const PdbTypes* types = nullptr;
    uint32_t index = 0;
};

// The function a frame executes, with its parameters and locals (dv, kp).
struct FrameScope {
    std::string module;
    uint64_t function_address = 0;
    const PdbTypes* types = nullptr;
    PdbFunctionFrame frame;
};

// The source line an address belongs to (.lines on, a PDB with line tables).
struct SourceLocation {
    std::string file; // the path as the PDB records it
    uint32_t line = 0;
    uint64_t line_address = 0; // where that line's code (the piece holding the address) starts
};

class Symbols {
  public:
    Symbols(Memory& memory, Modules& modules);
    ~Symbols();

    // ---- configuration ----
    const SymbolPath& path() const { return m_path; }
    void set_path(SymbolPath path) { m_path = std::move(path); }
    void set_noisy(bool noisy) { m_noisy = noisy; }
    bool noisy() const { return m_noisy; }
    void set_fetch_options(SymbolFetchOptions options) { m_server.set_options(std::move(options)); }
    // Where warnings ("*** ERROR: Symbol file could not be found...") and, when noisy, every
    // probe line go. Without a sink they queue up for take_messages().
    void set_sink(std::function<void(const std::string&)> sink) { m_sink = std::move(sink); }
    std::vector<std::string> take_messages();

    // ---- look-ups (load the module's symbols on first use) ----
    // module!name+offset for an address inside a known module (name empty when the module has
    // no symbol below it). The module list must be known (Modules::list).
    std::optional<SymbolMatch> symbolize(uint64_t address);
    // A symbol's address; case-insensitive, an exact-case match wins.
    std::optional<uint64_t> lookup(std::string_view module, std::string_view name);
    // x: every symbol matching module_pattern!name_pattern ('*' and '?'), by address.
    std::vector<SymbolInfo> search(std::string_view module_pattern, std::string_view name_pattern);
    // ln
    std::optional<NearSymbols> near(uint64_t address);
    // dt: "module!_TYPE" or "_TYPE" (every module with types is searched, loaded ones first).
    std::optional<TypeRef> find_type(std::string_view module, std::string_view name);
    // dt module!Pat*: the matching type names.
    std::vector<std::pair<std::string, std::string>> match_types(std::string_view module_pattern,
                                                                 std::string_view pattern);
    // The PDB types of one module (loading it), nullptr when it has none.
    const PdbTypes* types_of(uint64_t base);
    // The private function record that holds `pc`, with its locals; nullopt without one.
    std::optional<FrameScope> frame_scope(uint64_t pc);

    // ---- source lines (.lines, -lines; off by default as in kd) ----
    void set_load_lines(bool on) { m_load_lines = on; }
    bool load_lines() const { return m_load_lines; }
    // nullopt when lines are off, or the module has no PDB or no line for the address.
    std::optional<SourceLocation> source_line(uint64_t address);
    // source_line() without a hidden line (0xfeefee): what source mode lists and steps by.
    std::optional<SourceLocation> visible_source_line(uint64_t address);
    // A source-line expression's text between the backticks, "[[Module!]File][:Line]": the
    // first address of that line (or of the nearest following line with code). Without a
    // file, the file of `pc`; without a line, the file's lowest address. The line is decimal
    // unless it starts with 0x.
    [[nodiscard]] Result<uint64_t> source_address(std::string_view spec,
                                                  std::optional<uint64_t> pc);

    // ---- state ----
    struct ModuleState {
        Module::SymbolState state = Module::SymbolState::Deferred;
        std::string symbol_file; // the PDB's path, or the image name for exports
        std::optional<PeImageInfo> image;
    };
    ModuleState state(uint64_t base); // completes a module loaded for one stop line
    bool loaded(uint64_t base) const;
    // Fills each module's symbol state and file for lm.
    void annotate(std::vector<Module>& modules) const;
    // .reload: every module deferred again ("" = all), or loaded now when `force`. Returns the
    // modules it touched (NotFound for a name that is no loaded module).
    [[nodiscard]] Result<std::vector<std::string>> reload(std::string_view module, bool force);

    // A module loaded or unloaded at `base`: its symbols are stale.
    void forget(uint64_t base);
    void forget_all();

  private:
    struct LoadedPdb;
    struct ModuleSymbols;
    // Loads the module's symbols; with `quick_rva`, only what naming that RVA needs when the
    // module is not loaded yet (see ModuleSymbols::partial). Without it, completes a partial one.
    ModuleSymbols* ensure(const Module& m, std::optional<uint32_t> quick_rva = std::nullopt);
    void load(const Module& m, ModuleSymbols& ms, std::optional<uint32_t> quick_rva);
    void complete(const Module& m, ModuleSymbols& ms);
    void index_exports(const Module& m, ModuleSymbols& ms, std::vector<ExportSymbol> ex);
    std::shared_ptr<LoadedPdb> open_pdb(const Module& m, const CodeViewRecord& cv,
                                        const PeImageInfo& image, std::string& why_not);
    SymbolInfo info_of(const Module& m, const ModuleSymbols& ms, const SymbolEntry& e) const;
    void say(const std::string& text);
    void log(const std::string& text);
    ImageReader image_reader(const Module& m);

    Memory& m_memory;
    Modules& m_modules;
    SymbolPath m_path;
    SymbolServer m_server;
    bool m_noisy = false;
    bool m_load_lines = false;
    bool m_warned_empty_path = false;
    std::function<void(const std::string&)> m_sink;
    std::vector<std::string> m_messages;
    std::map<uint64_t, std::unique_ptr<ModuleSymbols>> m_by_base;
    std::map<std::string, std::shared_ptr<LoadedPdb>> m_pdbs; // by store key + file name
};

} // namespace kdcart::engine
