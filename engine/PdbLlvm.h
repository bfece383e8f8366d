#pragma once
// Shared by the files that talk to LLVM's PDB reader (Pdb.cpp, PdbTypesLlvm.cpp); not for the
// rest of the engine.
#include "engine/PdbLines.h"
#include "engine/PdbTypes.h"

#include <memory>

namespace llvm {
class Error;
namespace pdb {
class DbiModuleList;
class ModuleDebugStreamRef;
class PDBFile;
} // namespace pdb
} // namespace llvm

namespace kdcart::engine {

// The text of an LLVM error (consumed).
std::string llvm_error_text(llvm::Error e);
// Module `index`'s debug stream (its symbol records and C13 subsections), opened and parsed.
[[nodiscard]] Result<std::unique_ptr<llvm::pdb::ModuleDebugStreamRef>>
open_module_stream(llvm::pdb::PDBFile& file, const llvm::pdb::DbiModuleList& modules,
                   uint32_t index);
// The TPI stream of `file` as PdbTypes (records indexed once; conversion on demand).
[[nodiscard]] Result<std::unique_ptr<PdbTypes>> make_llvm_pdb_types(llvm::pdb::PDBFile& file);
// The line tables of every module stream (PdbLines.cpp); `section_rva` maps the line blocks'
// section numbers to RVAs, the same mapping the symbols use (PdbFile::read_symbols).
[[nodiscard]] Result<std::unique_ptr<PdbLines>>
make_llvm_pdb_lines(llvm::pdb::PDBFile& file, const std::vector<uint32_t>& section_rva);

} // namespace kdcart::engine
