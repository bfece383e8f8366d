// PdbTypes over LLVM's TPI stream reader. The records are indexed in one pass (index -> bytes);
// a record becomes a PdbType when first asked for, and the name index of the tagged types
// (struct/union/enum definitions) is built on the first search.
#include "engine/PdbLlvm.h"
#include "engine/Wildcard.h"

#include <llvm/DebugInfo/CodeView/CVTypeVisitor.h>
#include <llvm/DebugInfo/CodeView/TypeDeserializer.h>
#include <llvm/DebugInfo/CodeView/TypeIndex.h>
#include <llvm/DebugInfo/CodeView/TypeRecord.h>
#include <llvm/DebugInfo/CodeView/TypeVisitorCallbacks.h>
#include <llvm/DebugInfo/PDB/Native/PDBFile.h>
#include <llvm/DebugInfo/PDB/Native/TpiStream.h>
#include <llvm/Support/Error.h>

#include <algorithm>
#include <map>
#include <unordered_map>

namespace kdcart::engine {

using namespace llvm::codeview;
using llvm::consumeError;

namespace {

constexpr uint32_t kMaxRecords = 16 * 1024 * 1024;
constexpr int kMaxContinuations = 4096;

std::string lower(std::string_view s) {
    std::string r(s);
    for (auto& c : r) {
        c = fold_ascii(c);
    }
    return r;
}

// Collects a field list's members (following LF_INDEX continuations through `next`).
class FieldCollector : public TypeVisitorCallbacks {
  public:
    explicit FieldCollector(PdbType& t) : m_type(t) {}
    TypeIndex continuation;

    llvm::Error visitKnownMember(CVMemberRecord&, DataMemberRecord& r) override {
        PdbField f;
        f.name = r.Name.str();
        f.offset = r.FieldOffset;
        f.type = r.Type.getIndex();
        m_type.fields.push_back(std::move(f));
        return llvm::Error::success();
    }
    llvm::Error visitKnownMember(CVMemberRecord&, StaticDataMemberRecord& r) override {
        PdbField f;
        f.name = r.Name.str();
        f.type = r.Type.getIndex();
        f.is_static = true;
        m_type.fields.push_back(std::move(f));
        return llvm::Error::success();
    }
    llvm::Error visitKnownMember(CVMemberRecord&, EnumeratorRecord& r) override {
        PdbEnumerator e;
        e.name = r.Name.str();
        if (r.Value.getActiveBits() <= 64) {
            e.value = r.Value.isSigned() ? r.Value.getSExtValue()
                                         : static_cast<int64_t>(r.Value.getZExtValue());
        }
        m_type.enumerators.push_back(std::move(e));
        return llvm::Error::success();
    }
    llvm::Error visitKnownMember(CVMemberRecord&, ListContinuationRecord& r) override {
        continuation = r.ContinuationIndex;
        return llvm::Error::success();
    }

  private:
    PdbType& m_type;
};

struct SimpleInfo {
    const char* dt_name;
    const char* c_name;
    PdbType::Base base;
    uint8_t size;
};

std::optional<SimpleInfo> simple_info(SimpleTypeKind k) {
    using B = PdbType::Base;
    switch (k) {
    case SimpleTypeKind::Void:
        return SimpleInfo{"Void", "void", B::Void, 0};
    case SimpleTypeKind::HResult:
        return SimpleInfo{"Int4B", "HRESULT", B::HResult, 4};
    case SimpleTypeKind::SignedCharacter:
    case SimpleTypeKind::NarrowCharacter:
        return SimpleInfo{"Char", "char", B::Char, 1};
    case SimpleTypeKind::UnsignedCharacter:
        return SimpleInfo{"UChar", "unsigned char", B::UChar, 1};
    case SimpleTypeKind::WideCharacter:
        return SimpleInfo{"Wchar", "wchar_t", B::WChar, 2};
    case SimpleTypeKind::Character16:
        return SimpleInfo{"Wchar", "char16_t", B::WChar, 2};
    case SimpleTypeKind::Character32:
        return SimpleInfo{"Uint4B", "char32_t", B::UInt, 4};
    case SimpleTypeKind::SByte:
        return SimpleInfo{"Char", "char", B::Int, 1};
    case SimpleTypeKind::Byte:
        return SimpleInfo{"UChar", "unsigned char", B::UInt, 1};
    case SimpleTypeKind::Int16Short:
    case SimpleTypeKind::Int16:
        return SimpleInfo{"Int2B", "short", B::Int, 2};
    case SimpleTypeKind::UInt16Short:
    case SimpleTypeKind::UInt16:
        return SimpleInfo{"Uint2B", "unsigned short", B::UInt, 2};
    case SimpleTypeKind::Int32Long:
        return SimpleInfo{"Int4B", "long", B::Int, 4};
    case SimpleTypeKind::UInt32Long:
        return SimpleInfo{"Uint4B", "unsigned long", B::UInt, 4};
    case SimpleTypeKind::Int32:
        return SimpleInfo{"Int4B", "int", B::Int, 4};
    case SimpleTypeKind::UInt32:
        return SimpleInfo{"Uint4B", "unsigned int", B::UInt, 4};
    case SimpleTypeKind::Int64Quad:
    case SimpleTypeKind::Int64:
        return SimpleInfo{"Int8B", "int64", B::Int, 8};
    case SimpleTypeKind::UInt64Quad:
    case SimpleTypeKind::UInt64:
        return SimpleInfo{"Uint8B", "unsigned int64", B::UInt, 8};
    case SimpleTypeKind::Int128Oct:
    case SimpleTypeKind::Int128:
        return SimpleInfo{"Int16B", "int128", B::Int, 16};
    case SimpleTypeKind::UInt128Oct:
    case SimpleTypeKind::UInt128:
        return SimpleInfo{"Uint16B", "unsigned int128", B::UInt, 16};
    case SimpleTypeKind::Float32:
        return SimpleInfo{"Float", "float", B::Float, 4};
    case SimpleTypeKind::Float64:
        return SimpleInfo{"Float", "double", B::Float, 8};
    case SimpleTypeKind::Float80:
        return SimpleInfo{"Float", "long double", B::Float, 10};
    case SimpleTypeKind::Boolean8:
        return SimpleInfo{"Bool", "bool", B::Bool, 1};
    case SimpleTypeKind::Boolean16:
        return SimpleInfo{"Bool", "bool", B::Bool, 2};
    case SimpleTypeKind::Boolean32:
        return SimpleInfo{"Bool", "bool", B::Bool, 4};
    case SimpleTypeKind::Boolean64:
        return SimpleInfo{"Bool", "bool", B::Bool, 8};
    default:
        return std::nullopt;
    }
}

class LlvmPdbTypes final : public PdbTypes {
  public:
    explicit LlvmPdbTypes(std::vector<CVType> records) : m_records(std::move(records)) {}

    const PdbType* get(uint32_t index) const override {
        if (auto it = m_cache.find(index); it != m_cache.end()) {
            return it->second.get();
        }
        auto t = convert(index);
        if (!t) {
            return nullptr;
        }
        // A cycle may have cached this index meanwhile: keep the first.
        auto [it, inserted] = m_cache.emplace(index, std::move(t));
        return it->second.get();
    }

    std::optional<uint32_t> find(std::string_view name) const override {
        build_names();
        std::string_view n = name;
        if (auto it = m_exact.find(std::string(n)); it != m_exact.end()) {
            return it->second;
        }
        if (auto it = m_folded.find(lower(n)); it != m_folded.end()) {
            return it->second;
        }
        return std::nullopt;
    }

    std::vector<std::string> match(std::string_view pattern) const override {
        build_names();
        std::vector<std::string> out;
        for (const auto& [name, index] : m_exact) {
            if (wildcard_match(pattern, name)) {
                out.push_back(name);
            }
        }
        std::sort(out.begin(), out.end(), [](const std::string& a, const std::string& b) {
            return compare_nocase(a, b) < 0;
        });
        return out;
    }

    std::string c_name(uint32_t index) const override { return c_name_depth(index, 0); }

  private:
    std::optional<CVType> record(uint32_t index) const {
        if (index < TypeIndex::FirstNonSimpleIndex) {
            return std::nullopt;
        }
        const uint64_t i = uint64_t{index} - TypeIndex::FirstNonSimpleIndex;
        if (i >= m_records.size()) {
            return std::nullopt;
        }
        return m_records[i];
    }

    template <class T> std::optional<T> as(uint32_t index) const {
        auto cvt = record(index);
        if (!cvt) {
            return std::nullopt;
        }
        T rec(static_cast<TypeRecordKind>(cvt->kind()));
        if (auto e = TypeDeserializer::deserializeAs<T>(*cvt, rec)) {
            consumeError(std::move(e));
            return std::nullopt;
        }
        return rec;
    }

    std::string tag_key(const TagRecord& r) const {
        return r.hasUniqueName() ? r.UniqueName.str() : r.Name.str();
    }

    void build_names() const {
        if (m_names_built) {
            return;
        }
        m_names_built = true;
        for (size_t i = 0; i < m_records.size(); ++i) {
            const uint32_t index = static_cast<uint32_t>(i + TypeIndex::FirstNonSimpleIndex);
            const TypeLeafKind k = m_records[i].kind();
            std::optional<std::pair<std::string, std::string>> names; // name, key
            bool forward = true;
            if (k == LF_STRUCTURE || k == LF_CLASS || k == LF_INTERFACE) {
                if (auto r = as<ClassRecord>(index)) {
                    forward = r->isForwardRef();
                    names.emplace(r->Name.str(), tag_key(*r));
                }
            } else if (k == LF_UNION) {
                if (auto r = as<UnionRecord>(index)) {
                    forward = r->isForwardRef();
                    names.emplace(r->Name.str(), tag_key(*r));
                }
            } else if (k == LF_ENUM) {
                if (auto r = as<EnumRecord>(index)) {
                    forward = r->isForwardRef();
                    names.emplace(r->Name.str(), tag_key(*r));
                }
            }
            if (!names || forward || names->first.empty()) {
                continue;
            }
            m_definitions.emplace(names->second, index);
            m_exact.emplace(names->first, index);
            m_folded.emplace(lower(names->first), index);
        }
    }

    // A forward reference's definition (same unique name), or the reference itself.
    uint32_t resolve(uint32_t index, const TagRecord& r) const {
        if (!r.isForwardRef()) {
            return index;
        }
        build_names();
        if (auto it = m_definitions.find(tag_key(r)); it != m_definitions.end()) {
            return it->second;
        }
        return index;
    }

    void collect_fields(PdbType& t, TypeIndex list) const {
        uint32_t index = list.getIndex();
        for (int hop = 0; hop < kMaxContinuations && index >= TypeIndex::FirstNonSimpleIndex;
             ++hop) {
            auto cvt = record(index);
            if (!cvt || cvt->kind() != LF_FIELDLIST) {
                return;
            }
            FieldCollector collector(t);
            if (auto e = visitMemberRecordStream(cvt->content(), collector)) {
                consumeError(std::move(e));
            }
            if (collector.continuation.getIndex() <= index) {
                return; // continuations only go forward in a well-formed stream
            }
            index = collector.continuation.getIndex();
        }
    }

    std::unique_ptr<PdbType> convert_simple(uint32_t index) const {
        const TypeIndex ti(index);
        auto t = std::make_unique<PdbType>();
        const auto info = simple_info(ti.getSimpleKind());
        if (ti.getSimpleMode() != SimpleTypeMode::Direct) {
            t->kind = PdbType::Kind::Pointer;
            t->size = ti.getSimpleMode() == SimpleTypeMode::NearPointer64 ? 8 : 4;
            t->element = static_cast<uint32_t>(ti.getSimpleKind());
            return t;
        }
        t->kind = PdbType::Kind::Base;
        if (info) {
            t->name = info->dt_name;
            t->base = info->base;
            t->size = info->size;
        } else if (ti.getSimpleKind() == SimpleTypeKind::None) {
            return nullptr;
        } else {
            t->kind = PdbType::Kind::Unknown;
            t->name = "<unknown>";
        }
        return t;
    }

    // For a forward reference: a copy of its definition (nullptr when that is unreadable). nullopt
    // when `index` is the definition itself.
    template <class R>
    std::optional<std::unique_ptr<PdbType>> definition_of(uint32_t index, const R& r) const {
        const uint32_t def = resolve(index, r);
        if (def == index) {
            return std::nullopt;
        }
        const PdbType* full = get(def);
        return full ? std::make_unique<PdbType>(*full) : nullptr;
    }

    // A structure or union: its definition (a forward reference is resolved to it) with its
    // fields.
    template <class R>
    std::unique_ptr<PdbType> convert_aggregate(uint32_t index, PdbType::Kind kind,
                                               std::unique_ptr<PdbType> t) const {
        auto r = as<R>(index);
        if (!r) {
            return nullptr;
        }
        if (auto full = definition_of(index, *r)) {
            return std::move(*full);
        }
        t->kind = kind;
        t->name = r->Name.str();
        t->size = r->getSize();
        t->forward_ref = r->isForwardRef();
        collect_fields(*t, r->FieldList);
        return t;
    }

    std::unique_ptr<PdbType> convert(uint32_t index) const {
        if (index < TypeIndex::FirstNonSimpleIndex) {
            return convert_simple(index);
        }
        auto cvt = record(index);
        if (!cvt) {
            return nullptr;
        }
        auto t = std::make_unique<PdbType>();
        switch (cvt->kind()) {
        case LF_POINTER: {
            auto r = as<PointerRecord>(index);
            if (!r) {
                return nullptr;
            }
            t->kind = PdbType::Kind::Pointer;
            t->size = r->getSize() ? r->getSize() : 8;
            t->element = r->getReferentType().getIndex();
            break;
        }
        case LF_MODIFIER: {
            auto r = as<ModifierRecord>(index);
            if (!r) {
                return nullptr;
            }
            t->kind = PdbType::Kind::Modifier;
            t->element = r->ModifiedType.getIndex();
            break;
        }
        case LF_ARRAY: {
            auto r = as<ArrayRecord>(index);
            if (!r) {
                return nullptr;
            }
            t->kind = PdbType::Kind::Array;
            t->element = r->ElementType.getIndex();
            t->size = r->Size;
            t->name = r->Name.str();
            break;
        }
        case LF_STRUCTURE:
        case LF_CLASS:
        case LF_INTERFACE:
            return convert_aggregate<ClassRecord>(index, PdbType::Kind::Struct, std::move(t));
        case LF_UNION:
            return convert_aggregate<UnionRecord>(index, PdbType::Kind::Union, std::move(t));
        case LF_ENUM: {
            auto r = as<EnumRecord>(index);
            if (!r) {
                return nullptr;
            }
            if (auto full = definition_of(index, *r)) {
                return std::move(*full);
            }
            t->kind = PdbType::Kind::Enum;
            t->name = r->Name.str();
            t->element = r->UnderlyingType.getIndex();
            t->forward_ref = r->isForwardRef();
            if (t->element < TypeIndex::FirstNonSimpleIndex) {
                if (auto info = simple_info(TypeIndex(t->element).getSimpleKind())) {
                    t->size = info->size;
                }
            }
            if (t->size == 0) {
                t->size = 4;
            }
            collect_fields(*t, r->FieldList);
            break;
        }
        case LF_BITFIELD: {
            auto r = as<BitFieldRecord>(index);
            if (!r) {
                return nullptr;
            }
            t->kind = PdbType::Kind::Bitfield;
            t->element = r->Type.getIndex();
            t->bit_position = r->BitOffset;
            t->bit_length = r->BitSize;
            break;
        }
        case LF_PROCEDURE: {
            auto r = as<ProcedureRecord>(index);
            if (!r) {
                return nullptr;
            }
            t->kind = PdbType::Kind::Function;
            t->element = r->ReturnType.getIndex();
            if (auto args = as<ArgListRecord>(r->ArgumentList.getIndex())) {
                for (const auto& a : args->ArgIndices) {
                    t->params.push_back(a.getIndex());
                }
            }
            break;
        }
        case LF_MFUNCTION: {
            auto r = as<MemberFunctionRecord>(index);
            if (!r) {
                return nullptr;
            }
            t->kind = PdbType::Kind::Function;
            t->element = r->ReturnType.getIndex();
            if (auto args = as<ArgListRecord>(r->ArgumentList.getIndex())) {
                for (const auto& a : args->ArgIndices) {
                    t->params.push_back(a.getIndex());
                }
            }
            break;
        }
        default:
            t->kind = PdbType::Kind::Unknown;
            break;
        }
        // Sizes that follow from the element: modifiers and bit fields.
        if ((t->kind == PdbType::Kind::Modifier || t->kind == PdbType::Kind::Bitfield) &&
            t->element != index) {
            if (const PdbType* e = get_shallow(t->element)) {
                t->size = e->size;
            }
        }
        return t;
    }

    // get() for size look-ups of modifiers/bit fields: guards against self-referencing chains.
    const PdbType* get_shallow(uint32_t index) const {
        if (m_depth > 64) {
            return nullptr;
        }
        ++m_depth;
        const PdbType* t = get(index);
        --m_depth;
        return t;
    }

    std::string c_name_depth(uint32_t index, int depth) const {
        if (depth > 32) {
            return "?";
        }
        if (index < TypeIndex::FirstNonSimpleIndex) {
            const TypeIndex ti(index);
            auto info = simple_info(ti.getSimpleKind());
            std::string base = info ? info->c_name : "<unknown>";
            if (ti.getSimpleMode() != SimpleTypeMode::Direct) {
                base += " *";
            }
            return base;
        }
        const PdbType* t = get(index);
        if (!t) {
            return "<unknown>";
        }
        switch (t->kind) {
        case PdbType::Kind::Pointer: {
            const PdbType* f = get_shallow(t->element);
            if (f && f->kind == PdbType::Kind::Function) {
                std::string params;
                for (uint32_t p : f->params) {
                    params += (params.empty() ? "" : ", ") + c_name_depth(p, depth + 1);
                }
                return c_name_depth(f->element, depth + 1) + " (*)(" +
                       (params.empty() ? "void" : params) + ")";
            }
            return c_name_depth(t->element, depth + 1) + " *";
        }
        case PdbType::Kind::Modifier:
            return c_name_depth(t->element, depth + 1);
        case PdbType::Kind::Array: {
            const PdbType* e = get_shallow(t->element);
            const uint64_t n = e && e->size ? t->size / e->size : 0;
            return c_name_depth(t->element, depth + 1) + " [" + std::to_string(n) + "]";
        }
        case PdbType::Kind::Struct:
            return "struct " + t->name;
        case PdbType::Kind::Union:
            return "union " + t->name;
        case PdbType::Kind::Enum:
            return t->name;
        case PdbType::Kind::Bitfield:
            return c_name_depth(t->element, depth + 1);
        case PdbType::Kind::Function:
            return c_name_depth(t->element, depth + 1) + " ()";
        default:
            return t->name.empty() ? "<unknown>" : t->name;
        }
    }

    std::vector<CVType> m_records;
    mutable std::unordered_map<uint32_t, std::unique_ptr<PdbType>> m_cache;
    mutable bool m_names_built = false;
    mutable std::unordered_map<std::string, uint32_t> m_definitions; // unique name -> index
    mutable std::map<std::string, uint32_t> m_exact;
    mutable std::unordered_map<std::string, uint32_t> m_folded;
    mutable int m_depth = 0;
};

} // namespace

Result<std::unique_ptr<PdbTypes>> make_llvm_pdb_types(llvm::pdb::PDBFile& file) {
    if (!file.hasPDBTpiStream()) {
        return make_error(Errc::NotFound, "the PDB has no type stream");
    }
    auto tpi = file.getPDBTpiStream();
    if (!tpi) {
        return make_error(Errc::Malformed, "bad type stream: " + llvm_error_text(tpi.takeError()));
    }
    std::vector<CVType> records;
    const uint32_t declared = tpi->getNumTypeRecords();
    records.reserve(std::min(declared, kMaxRecords));
    bool had_error = false;
    for (const CVType& t : tpi->types(&had_error)) {
        if (records.size() >= kMaxRecords) {
            break;
        }
        records.push_back(t);
    }
    return std::unique_ptr<PdbTypes>(new LlvmPdbTypes(std::move(records)));
}

} // namespace kdcart::engine
