#pragma once
// A program database (PDB, MSF 7.00) read with LLVM's native PDB reader: identity (GUID, age),
// the symbols a debugger names addresses with (functions with their sizes from the module
// streams, globals, publics), and types for `dt`. LLVM stays behind this interface; nothing
// else in the engine includes its headers. A hostile file gives an error, never a crash.
#include "engine/PdbLines.h"
#include "engine/PdbTypes.h"
#include "engine/PeImage.h"

#include <memory>
#include <string>
#include <vector>

namespace kdcart::engine {

struct PdbSymbol {
    enum class Kind : uint8_t { Function, Data, Public, PublicFunction };
    std::string name; // WinDbg's spelling: undecorated, no parameter list
    uint32_t rva = 0;
    uint32_t size = 0;       // functions: code size; otherwise 0
    uint32_t type_index = 0; // CodeView type of a function or global (0 when unknown)
    Kind kind = Kind::Public;
    bool is_private = false; // from a module stream or the global data records
};

// Where a local variable or parameter lives, for part of its function (or all of it).
struct PdbLocation {
    enum class Kind : uint8_t {
        RegisterRelative, // [register + offset]
        FrameRelative,    // [frame pointer + offset] (the function's S_FRAMEPROC register)
        Register,         // the value is in `cv_register`
    };
    Kind kind = Kind::FrameRelative;
    uint16_t cv_register = 0; // CodeView register id (CV_AMD64_RSP = 335, ...)
    int32_t offset = 0;
    uint32_t start_rva = 0; // live range; both 0: the whole function
    uint32_t end_rva = 0;
};

struct PdbLocal {
    std::string name;
    uint32_t type = 0;
    bool is_param = false;
    std::vector<PdbLocation> locations; // empty: optimized out
};

struct PdbFunctionFrame {
    std::string name;
    uint32_t rva = 0;
    uint32_t size = 0;
    uint32_t type = 0;            // the function's type (LF_PROCEDURE)
    uint32_t frame_bytes = 0;     // S_FRAMEPROC TotalFrameBytes
    uint16_t frame_register = 0;  // CodeView id of the frame pointer locals are relative to
    std::vector<PdbLocal> locals; // parameters first, in declaration order
};

class PdbFile {
  public:
    ~PdbFile();
    PdbFile(const PdbFile&) = delete;
    PdbFile& operator=(const PdbFile&) = delete;

    // Opens and checks the MSF container and the info and DBI streams.
    [[nodiscard]] static Result<std::unique_ptr<PdbFile>> open(const std::string& path);
    // The same from bytes in memory (tests, fuzzing); `name` is only used in messages.
    [[nodiscard]] static Result<std::unique_ptr<PdbFile>> open_bytes(std::vector<uint8_t> bytes,
                                                                     std::string name = "<memory>");

    const std::string& path() const;
    std::array<uint8_t, 16> guid() const;
    uint32_t age() const;     // the info stream's age
    uint32_t dbi_age() const; // the DBI stream's age (what an image's RSDS age matches)
    uint16_t machine() const; // IMAGE_FILE_MACHINE_* from the DBI stream
    // The image's CodeView record names this PDB: same GUID, and its age is the PDB's.
    bool matches(const CodeViewRecord& cv) const;
    // "GUID {..} age 2 in the PDB, {..} age 1 in the image" when it does not match.
    std::string mismatch_reason(const CodeViewRecord& cv) const;

    // Every symbol with an address, RVAs through the PDB's own section table (or `fallback`,
    // the image's, when the PDB has none). Public symbols that name the same address as a
    // function or global are kept (their undecorated name may differ) with kind Public.
    [[nodiscard]] Result<std::vector<PdbSymbol>>
    read_symbols(const std::vector<PeSection>& fallback_sections = {});
    // True once read_symbols found function or data records (a "private" PDB).
    bool has_private_symbols() const;
    // The parameters and locals of the private function that starts at `function_rva` (after
    // read_symbols). NotFound when the PDB has no such function record.
    [[nodiscard]] Result<PdbFunctionFrame> function_frame(uint32_t function_rva);

    // Types (TPI). Loaded on first use.
    [[nodiscard]] Result<const PdbTypes*> types();
    // Line tables (C13 lines of the module streams). Loaded on first use.
    [[nodiscard]] Result<const PdbLines*> lines();

    struct Impl; // LLVM's objects (Pdb.cpp)

  private:
    explicit PdbFile(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> m;
};

// WinDbg's display name for a decorated symbol name: C++ names ("?Foo@Bar@@QEAAXH@Z") are
// undemangled without their parameter list ("Bar::Foo"); on x86, C names lose the leading '_'
// and the "@N" of __stdcall, and "@name@N" (__fastcall) becomes "name". Others are unchanged.
std::string undecorate_symbol(std::string_view name, uint16_t machine);
// "Foo::Bar(int, char*) const" -> "Foo::Bar" (strips a trailing parameter list).
std::string strip_parameters(std::string_view name);

} // namespace kdcart::engine
