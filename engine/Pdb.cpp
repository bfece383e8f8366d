// PDB reading through LLVM's native reader (llvm/DebugInfo/PDB/Native). Every LLVM error is
// consumed here and turned into a kdcart Error.
#include "engine/Pdb.h"
#include "engine/MsfGuard.h"
#include "engine/PdbLlvm.h"

#include <llvm/DebugInfo/CodeView/SymbolDeserializer.h>
#include <llvm/DebugInfo/CodeView/SymbolRecord.h>
#include <llvm/DebugInfo/MSF/MappedBlockStream.h>
#include <llvm/DebugInfo/PDB/Native/DbiModuleDescriptor.h>
#include <llvm/DebugInfo/PDB/Native/DbiModuleList.h>
#include <llvm/DebugInfo/PDB/Native/DbiStream.h>
#include <llvm/DebugInfo/PDB/Native/InfoStream.h>
#include <llvm/DebugInfo/PDB/Native/ModuleDebugStream.h>
#include <llvm/DebugInfo/PDB/Native/PDBFile.h>
#include <llvm/DebugInfo/PDB/Native/RawConstants.h>
#include <llvm/DebugInfo/PDB/Native/SymbolStream.h>
#include <llvm/Demangle/Demangle.h>
#include <llvm/Object/COFF.h>
#include <llvm/Support/Allocator.h>
#include <llvm/Support/BinaryByteStream.h>
#include <llvm/Support/Error.h>
#include <llvm/Support/MemoryBuffer.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <unordered_set>

namespace kdcart::engine {

using namespace llvm::codeview;
using llvm::consumeError;
using namespace llvm::pdb;

namespace {

// A symbol record decoded as T, or nothing when it is malformed (its error is dropped: a bad
// record is skipped and the rest of the stream is still read).
template <class T> std::optional<T> decode(const CVSymbol& sym) {
    auto r = SymbolDeserializer::deserializeAs<T>(sym);
    if (!r) {
        consumeError(r.takeError());
        return std::nullopt;
    }
    return std::move(*r);
}

} // namespace

std::string llvm_error_text(llvm::Error e) {
    std::string text;
    llvm::handleAllErrors(std::move(e), [&](const llvm::ErrorInfoBase& info) {
        if (!text.empty()) {
            text += "; ";
        }
        text += info.message();
    });
    return text.empty() ? "unknown error" : text;
}

namespace {
// Section number -> RVA from the DBI stream's copy of the image's section headers (empty when
// the PDB has no DBI stream).
Result<std::vector<uint32_t>> dbi_section_rvas(PDBFile& file, bool has_dbi) {
    std::vector<uint32_t> out;
    if (!has_dbi) {
        return out;
    }
    auto dbi = file.getPDBDbiStream();
    if (!dbi) {
        return make_error(Errc::Malformed, llvm_error_text(dbi.takeError()));
    }
    for (const llvm::object::coff_section& s : dbi->getSectionHeaders()) {
        out.push_back(s.VirtualAddress);
    }
    return out;
}
} // namespace

Result<std::unique_ptr<ModuleDebugStreamRef>>
open_module_stream(PDBFile& file, const DbiModuleList& modules, uint32_t index) {
    if (index >= modules.getModuleCount()) {
        return make_error(Errc::Malformed, "bad module index");
    }
    const DbiModuleDescriptor desc = modules.getModuleDescriptor(index);
    const uint16_t sn = desc.getModuleStreamIndex();
    if (sn == kInvalidStreamIndex || sn >= file.getNumStreams()) {
        return make_error(Errc::Malformed, "the module has no debug stream");
    }
    auto stream = file.safelyCreateIndexedStream(sn);
    if (!stream) {
        return make_error(Errc::Malformed, llvm_error_text(stream.takeError()));
    }
    auto mod = std::make_unique<ModuleDebugStreamRef>(desc, std::move(*stream));
    if (auto e = mod->reload()) {
        return make_error(Errc::Malformed, llvm_error_text(std::move(e)));
    }
    return mod;
}

struct PdbFile::Impl {
    llvm::BumpPtrAllocator allocator;
    std::unique_ptr<PDBFile> file;
    std::string path;
    std::array<uint8_t, 16> guid{};
    uint32_t age = 0;
    uint32_t dbi_age = 0;
    uint16_t machine = 0;
    bool has_dbi = false;
    bool private_symbols = false;
    std::vector<uint32_t> section_rva;
    // Where each private function's record is: RVA -> (module index, offset in its stream).
    std::map<uint32_t, std::pair<uint32_t, uint32_t>> functions;
    std::unique_ptr<PdbTypes> types;
    std::string types_error;
    std::unique_ptr<PdbLines> lines;
    std::string lines_error;
};

PdbFile::PdbFile(std::unique_ptr<Impl> impl) : m(std::move(impl)) {}
PdbFile::~PdbFile() = default;

namespace {

Result<std::unique_ptr<PdbFile::Impl>> open_stream(std::unique_ptr<llvm::MemoryBuffer> buffer,
                                                   const std::string& path) {
    // LLVM trusts some of the file's numbers: they are checked (and deleted streams given size
    // 0) in kdcart's own copy of the bytes first (MsfGuard.h).
    auto copy = llvm::WritableMemoryBuffer::getNewUninitMemBuffer(buffer->getBufferSize(),
                                                                  buffer->getBufferIdentifier());
    if (!copy) {
        return make_error(Errc::Io, path + ": out of memory for " +
                                        std::to_string(buffer->getBufferSize()) + " bytes");
    }
    std::memcpy(copy->getBufferStart(), buffer->getBufferStart(), buffer->getBufferSize());
    buffer.reset();
    if (auto ok =
            check_msf(reinterpret_cast<uint8_t*>(copy->getBufferStart()), copy->getBufferSize());
        !ok) {
        return make_error(Errc::Malformed, path + ": " + ok.error().message);
    }
    buffer = std::move(copy);
    auto impl = std::make_unique<PdbFile::Impl>();
    impl->path = path;
    auto stream =
        std::make_unique<llvm::MemoryBufferByteStream>(std::move(buffer), llvm::support::little);
    impl->file = std::make_unique<PDBFile>(path, std::move(stream), impl->allocator);
    if (auto e = impl->file->parseFileHeaders()) {
        return make_error(Errc::Malformed,
                          path + ": not a PDB (" + llvm_error_text(std::move(e)) + ")");
    }
    if (auto e = impl->file->parseStreamData()) {
        return make_error(Errc::Malformed, path + ": broken stream directory (" +
                                               llvm_error_text(std::move(e)) + ")");
    }
    if (!impl->file->hasPDBInfoStream()) {
        return make_error(Errc::Malformed, path + ": no PDB info stream");
    }
    auto info = impl->file->getPDBInfoStream();
    if (!info) {
        return make_error(Errc::Malformed,
                          path + ": bad info stream (" + llvm_error_text(info.takeError()) + ")");
    }
    const GUID g = info->getGuid();
    std::memcpy(impl->guid.data(), g.Guid, 16);
    impl->age = info->getAge();
    impl->dbi_age = impl->age;
    if (impl->file->hasPDBDbiStream()) {
        auto dbi = impl->file->getPDBDbiStream();
        if (!dbi) {
            return make_error(Errc::Malformed,
                              path + ": bad DBI stream (" + llvm_error_text(dbi.takeError()) + ")");
        }
        impl->has_dbi = true;
        impl->dbi_age = dbi->getAge();
        impl->machine = static_cast<uint16_t>(dbi->getMachineType());
    }
    return impl;
}

bool scope_opens(SymbolKind k) {
    switch (k) {
    case S_GPROC32:
    case S_LPROC32:
    case S_GPROC32_ID:
    case S_LPROC32_ID:
    case S_LPROC32_DPC:
    case S_LPROC32_DPC_ID:
    case S_BLOCK32:
    case S_THUNK32:
    case S_WITH32:
    case S_SEPCODE:
    case S_INLINESITE:
    case S_INLINESITE2:
        return true;
    default:
        return false;
    }
}

bool scope_closes(SymbolKind k) {
    return k == S_END || k == S_PROC_ID_END || k == S_INLINESITE_END;
}

bool is_proc(SymbolKind k) {
    return k == S_GPROC32 || k == S_LPROC32 || k == S_GPROC32_ID || k == S_LPROC32_ID ||
           k == S_LPROC32_DPC || k == S_LPROC32_DPC_ID;
}

void replace_all(std::string& s, std::string_view from, std::string_view to) {
    for (size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size())) {
        s.replace(pos, from.size(), to);
    }
}

// LLVM's demangler spells templates as "A<class B, struct C>>"; dbghelp, whose names WinDbg
// shows, writes "A<B,C> >" and "`scalar deleting destructor'".
std::string msvc_spelling(std::string s) {
    replace_all(s, "`scalar deleting dtor'", "`scalar deleting destructor'");
    replace_all(s, "`vector deleting dtor'", "`vector deleting destructor'");
    for (std::string_view kw : {"class ", "struct ", "union ", "enum "}) {
        for (size_t pos = s.find(kw); pos != std::string::npos; pos = s.find(kw, pos)) {
            const char before = pos == 0 ? '<' : s[pos - 1];
            if (before == '<' || before == ',' || before == ' ' || before == '(') {
                s.erase(pos, kw.size());
            } else {
                pos += kw.size();
            }
        }
    }
    replace_all(s, ", ", ",");
    for (size_t pos = s.find(">>"); pos != std::string::npos; pos = s.find(">>", pos)) {
        s.insert(pos + 1, " ");
    }
    return s;
}

bool all_digits(std::string_view s) {
    return !s.empty() &&
           std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

} // namespace

Result<std::unique_ptr<PdbFile>> PdbFile::open(const std::string& path) {
    auto buffer =
        llvm::MemoryBuffer::getFile(path, /*IsText=*/false, /*RequiresNullTerminator=*/false);
    if (!buffer) {
        return make_error(Errc::NotFound, path + ": " + buffer.getError().message());
    }
    auto impl = open_stream(std::move(*buffer), path);
    if (!impl) {
        return tl::unexpected(impl.error());
    }
    return std::unique_ptr<PdbFile>(new PdbFile(std::move(*impl)));
}

Result<std::unique_ptr<PdbFile>> PdbFile::open_bytes(std::vector<uint8_t> bytes, std::string name) {
    auto buffer = llvm::MemoryBuffer::getMemBufferCopy(
        llvm::StringRef(reinterpret_cast<const char*>(bytes.data()), bytes.size()), name);
    auto impl = open_stream(std::move(buffer), name);
    if (!impl) {
        return tl::unexpected(impl.error());
    }
    return std::unique_ptr<PdbFile>(new PdbFile(std::move(*impl)));
}

const std::string& PdbFile::path() const {
    return m->path;
}
std::array<uint8_t, 16> PdbFile::guid() const {
    return m->guid;
}
uint32_t PdbFile::age() const {
    return m->age;
}
uint32_t PdbFile::dbi_age() const {
    return m->dbi_age;
}
uint16_t PdbFile::machine() const {
    return m->machine;
}
bool PdbFile::has_private_symbols() const {
    return m->private_symbols;
}

bool PdbFile::matches(const CodeViewRecord& cv) const {
    return cv.guid == m->guid && (cv.age == m->dbi_age || cv.age == m->age);
}

std::string PdbFile::mismatch_reason(const CodeViewRecord& cv) const {
    CodeViewRecord mine;
    mine.guid = m->guid;
    mine.age = m->dbi_age;
    return "the PDB has GUID " + mine.guid_string() + " age " + std::to_string(mine.age) +
           ", the image wants " + cv.guid_string() + " age " + std::to_string(cv.age);
}

Result<std::vector<PdbSymbol>> PdbFile::read_symbols(const std::vector<PeSection>& fallback) {
    PDBFile& file = *m->file;
    auto from_dbi = dbi_section_rvas(file, m->has_dbi);
    if (!from_dbi) {
        return tl::unexpected(from_dbi.error());
    }
    std::vector<uint32_t> section_rva = std::move(*from_dbi);
    if (section_rva.empty()) {
        for (const auto& s : fallback) {
            section_rva.push_back(s.virtual_address);
        }
    }
    m->section_rva = section_rva;
    m->functions.clear();
    auto to_rva = [&](uint16_t segment, uint32_t offset) -> std::optional<uint32_t> {
        if (segment == 0 || segment > section_rva.size()) {
            return std::nullopt;
        }
        return section_rva[segment - 1] + offset;
    };

    std::vector<PdbSymbol> out;
    bool any_private = false;
    // (rva, raw name) of every public: on x86, assembler procedures carry decorated names in
    // their private records too ("__SEH_prolog4"); WinDbg shows them undecorated.
    std::vector<std::pair<uint32_t, std::string>> raw_publics;

    // Functions (with sizes) and file-scope data from every module's symbol stream.
    if (m->has_dbi) {
        auto dbi = file.getPDBDbiStream();
        const DbiModuleList& modules = dbi->modules();
        const uint32_t count = modules.getModuleCount();
        for (uint32_t i = 0; i < count; ++i) {
            auto mod = open_module_stream(file, modules, i);
            if (!mod) {
                continue; // a module that does not open costs its own symbols only
            }
            bool had_error = false;
            int depth = 0;
            const auto& records = (*mod)->getSymbolArray();
            for (auto it = records.begin(&had_error); it != records.end(); ++it) {
                const CVSymbol& sym = *it;
                const SymbolKind k = sym.kind();
                if (depth == 0 && is_proc(k)) {
                    auto p = decode<ProcSym>(sym);
                    if (auto rva = p ? to_rva(p->Segment, p->CodeOffset) : std::nullopt) {
                        PdbSymbol s;
                        s.name = p->Name.str();
                        s.rva = *rva;
                        s.size = p->CodeSize;
                        s.type_index = p->FunctionType.getIndex();
                        s.kind = PdbSymbol::Kind::Function;
                        s.is_private = true;
                        m->functions.emplace(*rva, std::make_pair(i, it.offset()));
                        out.push_back(std::move(s));
                        any_private = true;
                    }
                } else if (depth == 0 && k == S_THUNK32) {
                    auto t = decode<Thunk32Sym>(sym);
                    if (auto rva = t ? to_rva(t->Segment, t->Offset) : std::nullopt;
                        rva && !t->Name.empty()) {
                        PdbSymbol s;
                        s.name = t->Name.str();
                        s.rva = *rva;
                        s.size = t->Length;
                        s.kind = PdbSymbol::Kind::Function;
                        s.is_private = true;
                        out.push_back(std::move(s));
                    }
                } else if (depth == 0 && (k == S_GDATA32 || k == S_LDATA32)) {
                    auto d = decode<DataSym>(sym);
                    if (auto rva = d ? to_rva(d->Segment, d->DataOffset) : std::nullopt;
                        rva && !d->Name.empty()) {
                        PdbSymbol s;
                        s.name = d->Name.str();
                        s.rva = *rva;
                        s.type_index = d->Type.getIndex();
                        s.kind = PdbSymbol::Kind::Data;
                        s.is_private = true;
                        out.push_back(std::move(s));
                        any_private = true;
                    }
                }
                if (scope_opens(k)) {
                    ++depth;
                } else if (scope_closes(k) && depth > 0) {
                    --depth;
                }
            }
        }
    }

    // Globals and publics from the symbol record stream.
    if (file.hasPDBSymbolStream()) {
        auto records = file.getPDBSymbolStream();
        if (!records) {
            consumeError(records.takeError());
        } else {
            bool had_error = false;
            for (const CVSymbol& sym : records->getSymbols(&had_error)) {
                const SymbolKind k = sym.kind();
                if (k == S_PUB32) {
                    auto p = decode<PublicSym32>(sym);
                    if (!p) {
                        continue;
                    }
                    auto rva = to_rva(p->Segment, p->Offset);
                    if (!rva || p->Name.empty()) {
                        continue;
                    }
                    if (m->machine == k_machine_i386) {
                        raw_publics.emplace_back(*rva, p->Name.str());
                    }
                    PdbSymbol s;
                    s.name = undecorate_symbol(p->Name, m->machine);
                    s.rva = *rva;
                    const bool code =
                        (p->Flags & (PublicSymFlags::Code | PublicSymFlags::Function)) !=
                        PublicSymFlags::None;
                    s.kind = code ? PdbSymbol::Kind::PublicFunction : PdbSymbol::Kind::Public;
                    out.push_back(std::move(s));
                } else if (k == S_GDATA32 || k == S_LDATA32) {
                    auto d = decode<DataSym>(sym);
                    if (!d) {
                        continue;
                    }
                    auto rva = to_rva(d->Segment, d->DataOffset);
                    if (!rva || d->Name.empty()) {
                        continue;
                    }
                    PdbSymbol s;
                    s.name = d->Name.str();
                    s.rva = *rva;
                    s.type_index = d->Type.getIndex();
                    s.kind = PdbSymbol::Kind::Data;
                    s.is_private = true;
                    out.push_back(std::move(s));
                    any_private = true;
                }
            }
        }
    }

    if (!raw_publics.empty()) {
        std::sort(raw_publics.begin(), raw_publics.end());
        for (auto& s : out) {
            if (s.kind == PdbSymbol::Kind::Function &&
                std::binary_search(raw_publics.begin(), raw_publics.end(),
                                   std::make_pair(s.rva, s.name))) {
                s.name = undecorate_symbol(s.name, m->machine);
            }
        }
    }

    // One record per (address, name): the module streams and the global stream repeat data
    // records, and a public usually repeats a function under the same undecorated name.
    std::stable_sort(out.begin(), out.end(), [](const PdbSymbol& a, const PdbSymbol& b) {
        if (a.rva != b.rva) {
            return a.rva < b.rva;
        }
        return static_cast<int>(a.kind) < static_cast<int>(b.kind); // functions, data first
    });
    std::vector<PdbSymbol> unique;
    unique.reserve(out.size());
    for (size_t i = 0; i < out.size();) {
        size_t j = i;
        while (j < out.size() && out[j].rva == out[i].rva) {
            ++j;
        }
        const size_t group = unique.size();
        for (size_t k = i; k < j; ++k) {
            const bool dup = std::any_of(unique.begin() + static_cast<long>(group), unique.end(),
                                         [&](const PdbSymbol& u) { return u.name == out[k].name; });
            if (!dup) {
                unique.push_back(std::move(out[k]));
            }
        }
        i = j;
    }
    m->private_symbols = any_private;
    return unique;
}

Result<PdbFunctionFrame> PdbFile::function_frame(uint32_t function_rva) {
    auto where = m->functions.find(function_rva);
    if (where == m->functions.end() || !m->has_dbi) {
        return make_error(Errc::NotFound, "no function record at this address");
    }
    PDBFile& file = *m->file;
    auto dbi = file.getPDBDbiStream();
    if (!dbi) {
        return make_error(Errc::Malformed, llvm_error_text(dbi.takeError()));
    }
    auto opened = open_module_stream(file, dbi->modules(), where->second.first);
    if (!opened) {
        return tl::unexpected(opened.error());
    }
    ModuleDebugStreamRef& mod = **opened;
    auto to_rva = [&](uint16_t segment, uint32_t offset) -> uint32_t {
        if (segment == 0 || segment > m->section_rva.size()) {
            return 0;
        }
        return m->section_rva[segment - 1] + offset;
    };
    PdbFunctionFrame frame;
    // A place where the local declared last lives, over one address range (none: the whole
    // function).
    auto add_location = [&](PdbLocation::Kind kind, uint16_t reg, int32_t offset,
                            const LocalVariableAddrRange* range) {
        if (frame.locals.empty()) {
            return;
        }
        const uint32_t start = range ? to_rva(range->ISectStart, range->OffsetStart) : 0;
        frame.locals.back().locations.push_back(
            {kind, reg, offset, start, range ? start + range->Range : 0});
    };
    const auto& records = mod.getSymbolArray();
    int depth = 0;
    int inline_depth = 0; // inside an inlined call site: its locals are the inlinee's
    std::vector<bool> opened_inline;
    bool first = true;
    size_t regrel_params = 0; // S_REGREL32 records carry no parameter flag: the first N are
    for (auto it = records.at(where->second.second); it != records.end(); ++it) {
        const CVSymbol& sym = *it;
        const SymbolKind k = sym.kind();
        if (first) {
            first = false;
            auto p = is_proc(k) ? decode<ProcSym>(sym) : std::nullopt;
            if (!p) {
                return make_error(Errc::Malformed, "the function record is not a procedure");
            }
            frame.name = p->Name.str();
            frame.rva = function_rva;
            frame.size = p->CodeSize;
            frame.type = p->FunctionType.getIndex();
            if (auto t = types()) {
                if (const PdbType* ft = (*t)->get(frame.type)) {
                    regrel_params = ft->params.size();
                }
            }
            depth = 1;
            continue;
        }
        if (scope_closes(k)) {
            if (!opened_inline.empty()) {
                inline_depth -= opened_inline.back() ? 1 : 0;
                opened_inline.pop_back();
            }
            if (--depth <= 0) {
                break;
            }
            continue;
        }
        if (scope_opens(k)) {
            ++depth;
            const bool is_inline = k == S_INLINESITE || k == S_INLINESITE2;
            opened_inline.push_back(is_inline);
            inline_depth += is_inline ? 1 : 0;
            continue;
        }
        if (inline_depth > 0 || depth > 64) {
            continue;
        }
        switch (k) {
        case S_FRAMEPROC: {
            auto f = decode<FrameProcSym>(sym);
            if (!f) {
                break;
            }
            frame.frame_bytes = f->TotalFrameBytes;
            const CPUType cpu = m->machine == k_machine_i386 ? CPUType::Intel80386 : CPUType::X64;
            frame.frame_register = static_cast<uint16_t>(f->getLocalFramePtrReg(cpu));
            break;
        }
        case S_REGREL32: {
            auto r = decode<RegRelativeSym>(sym);
            if (!r) {
                break;
            }
            PdbLocal l;
            l.name = r->Name.str();
            l.type = r->Type.getIndex();
            l.is_param = regrel_params > 0;
            regrel_params -= regrel_params > 0 ? 1 : 0;
            l.locations.push_back({PdbLocation::Kind::RegisterRelative,
                                   static_cast<uint16_t>(r->Register),
                                   static_cast<int32_t>(r->Offset), 0, 0});
            frame.locals.push_back(std::move(l));
            break;
        }
        case S_BPREL32: {
            auto r = decode<BPRelativeSym>(sym);
            if (!r) {
                break;
            }
            PdbLocal l;
            l.name = r->Name.str();
            l.type = r->Type.getIndex();
            l.is_param = r->Offset > 0;
            l.locations.push_back(
                {PdbLocation::Kind::RegisterRelative, 22 /* EBP */, r->Offset, 0, 0});
            frame.locals.push_back(std::move(l));
            break;
        }
        case S_LOCAL: {
            auto r = decode<LocalSym>(sym);
            if (!r) {
                break;
            }
            PdbLocal l;
            l.name = r->Name.str();
            l.type = r->Type.getIndex();
            l.is_param = (r->Flags & LocalSymFlags::IsParameter) != LocalSymFlags::None;
            frame.locals.push_back(std::move(l));
            break;
        }
        case S_DEFRANGE_FRAMEPOINTER_REL:
            if (auto r = decode<DefRangeFramePointerRelSym>(sym)) {
                add_location(PdbLocation::Kind::FrameRelative, 0, r->Hdr.Offset, &r->Range);
            }
            break;
        case S_DEFRANGE_FRAMEPOINTER_REL_FULL_SCOPE:
            if (auto r = decode<DefRangeFramePointerRelFullScopeSym>(sym)) {
                add_location(PdbLocation::Kind::FrameRelative, 0, r->Offset, nullptr);
            }
            break;
        case S_DEFRANGE_REGISTER:
            if (auto r = decode<DefRangeRegisterSym>(sym)) {
                add_location(PdbLocation::Kind::Register, r->Hdr.Register, 0, &r->Range);
            }
            break;
        case S_DEFRANGE_REGISTER_REL:
            if (auto r = decode<DefRangeRegisterRelSym>(sym); r && !r->hasSpilledUDTMember()) {
                add_location(PdbLocation::Kind::RegisterRelative, r->Hdr.Register,
                             r->Hdr.BasePointerOffset, &r->Range);
            }
            break;
        default:
            break;
        }
    }
    // Parameters first, each group in record order.
    std::stable_partition(frame.locals.begin(), frame.locals.end(),
                          [](const PdbLocal& l) { return l.is_param; });
    return frame;
}

Result<const PdbTypes*> PdbFile::types() {
    if (!m->types) {
        if (!m->types_error.empty()) {
            return make_error(Errc::Malformed, m->types_error);
        }
        auto t = make_llvm_pdb_types(*m->file);
        if (!t) {
            m->types_error = t.error().message;
            return tl::unexpected(t.error());
        }
        m->types = std::move(*t);
    }
    return m->types.get();
}

Result<const PdbLines*> PdbFile::lines() {
    if (!m->lines) {
        if (!m->lines_error.empty()) {
            return make_error(Errc::Malformed, m->lines_error);
        }
        // The symbols' section mapping (the image's sections when the PDB has none), or the
        // PDB's own when no symbols were read yet.
        std::vector<uint32_t> section_rva = m->section_rva;
        if (section_rva.empty()) {
            if (auto from_dbi = dbi_section_rvas(*m->file, m->has_dbi)) {
                section_rva = std::move(*from_dbi);
            }
        }
        auto l = make_llvm_pdb_lines(*m->file, section_rva);
        if (!l) {
            m->lines_error = l.error().message;
            return tl::unexpected(l.error());
        }
        m->lines = std::move(*l);
    }
    return m->lines.get();
}

std::string strip_parameters(std::string_view name) {
    std::string s(name);
    // Trailing qualifiers of a member function: " const", " volatile", " __ptr64", "&", "&&".
    for (bool again = true; again;) {
        again = false;
        for (std::string_view q : {" const", " volatile", " __ptr64", " &&", " &", "&&", "&"}) {
            if (s.size() > q.size() && s.compare(s.size() - q.size(), q.size(), q) == 0 &&
                s.find(')') != std::string::npos) {
                s.resize(s.size() - q.size());
                again = true;
            }
        }
    }
    if (s.empty() || s.back() != ')') {
        return std::string(name);
    }
    int depth = 0;
    for (size_t i = s.size(); i-- > 0;) {
        if (s[i] == ')') {
            ++depth;
        } else if (s[i] == '(') {
            if (--depth == 0) {
                if (i == 0) {
                    return std::string(name);
                }
                return s.substr(0, i);
            }
        }
    }
    return std::string(name);
}

std::string undecorate_symbol(std::string_view name, uint16_t machine) {
    if (!name.empty() && name[0] == '?') {
        const std::string mangled(name);
        int status = 0;
        const auto flags = static_cast<llvm::MSDemangleFlags>(
            llvm::MSDF_NoAccessSpecifier | llvm::MSDF_NoCallingConvention |
            llvm::MSDF_NoReturnType | llvm::MSDF_NoMemberType | llvm::MSDF_NoVariableType);
        char* d =
            llvm::microsoftDemangle(mangled.c_str(), nullptr, nullptr, nullptr, &status, flags);
        if (d && status == llvm::demangle_success && d[0] == '"') {
            std::free(d);
            return "`string'"; // a string literal (??_C@...), as dbghelp names it
        }
        if (d && status == llvm::demangle_success) {
            std::string out = msvc_spelling(strip_parameters(d));
            std::free(d);
            return out;
        }
        std::free(d);
        return mangled;
    }
    if (machine == k_machine_i386 && name.size() > 1) {
        if (name[0] == '_' || name[0] == '@') {
            std::string_view rest = name.substr(1);
            const size_t at = rest.rfind('@');
            if (at != std::string_view::npos && at > 0 && all_digits(rest.substr(at + 1))) {
                rest = rest.substr(0, at);
            }
            return std::string(rest);
        }
    }
    return std::string(name);
}

} // namespace kdcart::engine
