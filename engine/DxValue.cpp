// dx's evaluator: the children of each kind of value (see DxValue.h); the expressions are parsed
// in DxParser.cpp. Offsets come from the PDB's types by field name: the structures of a module
// from its own PDB, the kernel's objects from nt's.
#include "engine/DxValue.h"
#include "engine/Debugger.h"
#include "engine/HexText.h"
#include "engine/KernelTypes.h"
#include "engine/ThreadState.h"

#include <cctype>
#include <cstring>

namespace kdcart::engine {

namespace {

Error unreadable(uint64_t address) {
    return Error{Errc::Unreadable, "Unable to read memory at Address " + hex_0x(address)};
}

// An array's element count: its size over its element's (the PDB records the size).
uint64_t array_count(const PdbTypes& types, const PdbType& t) {
    if (t.count) {
        return t.count;
    }
    const PdbType* e = types.get(t.element);
    return e && e->size ? t.size / e->size : 0;
}

} // namespace

const PdbType* DxEvaluator::resolved(const DxValue& v, uint32_t* out_index) const {
    if (!v.types || (v.kind != DxValue::Kind::Object && v.kind != DxValue::Kind::Pointer)) {
        return nullptr;
    }
    uint32_t index = v.type;
    const PdbType* t = v.types->get(index);
    for (int i = 0; t && t->kind == PdbType::Kind::Modifier && i < 8; ++i) {
        index = t->element;
        t = v.types->get(index);
    }
    if (out_index) {
        *out_index = index;
    }
    return t;
}

Result<uint64_t> DxEvaluator::read_scalar(const DxValue& v) {
    if (v.kind == DxValue::Kind::Number || v.kind == DxValue::Kind::Pointer) {
        return v.address;
    }
    const PdbType* t = resolved(v);
    if (!t) {
        return make_error(Errc::NotFound, "The value has no type");
    }
    uint64_t size = t->size;
    if (t->kind == PdbType::Kind::Enum || t->kind == PdbType::Kind::Bitfield) {
        const PdbType* u = v.types->get(t->element);
        size = u && u->size ? u->size : 4;
    } else if (t->kind == PdbType::Kind::Pointer && size == 0) {
        size = 8;
    }
    if (size == 0 || size > 8) {
        return make_error(Errc::InvalidArgument, "The value is not a scalar");
    }
    auto m = m_dbg.read_virtual(v.address, size);
    if (!m || m->readable_prefix() < size) {
        return tl::unexpected(unreadable(v.address));
    }
    uint64_t bits = 0;
    for (size_t i = size; i-- > 0;) {
        bits = (bits << 8) | m->bytes[i];
    }
    if (t->kind == PdbType::Kind::Bitfield) {
        bits >>= t->bit_position;
        if (t->bit_length < 64) {
            bits &= (uint64_t{1} << t->bit_length) - 1;
        }
    }
    return bits;
}

Result<DxValue> DxEvaluator::load_pointer(const DxValue& v) {
    if (v.kind != DxValue::Kind::Object) {
        return v;
    }
    const PdbType* t = resolved(v);
    if (!t || t->kind != PdbType::Kind::Pointer) {
        return v;
    }
    auto bits = read_scalar(v);
    if (!bits) {
        return tl::unexpected(bits.error());
    }
    DxValue p;
    p.kind = DxValue::Kind::Pointer;
    p.types = v.types;
    p.type = t->element;
    p.address = *bits;
    return p;
}

tl::unexpected<Error> DxEvaluator::untyped(const DxValue& v) {
    return make_error(Errc::NotFound,
                      "No type (or void) for object at Address " + hex_0x(v.address));
}

Result<DxValue> DxEvaluator::deref(const DxValue& v) {
    if (v.kind == DxValue::Kind::Untyped) {
        return untyped(v);
    }
    auto p = load_pointer(v);
    if (!p) {
        return p;
    }
    if (p->kind == DxValue::Kind::Process || p->kind == DxValue::Kind::Thread) {
        return p; // dx reaches a data-model object's properties through '->' too
    }
    if (p->kind != DxValue::Kind::Pointer) {
        return make_error(Errc::InvalidArgument,
                          "Cannot dereference a value that is not a pointer");
    }
    DxValue o = *p;
    o.kind = DxValue::Kind::Object;
    return o;
}

Result<DxValue> DxEvaluator::nt_object(const char* type, uint64_t address) {
    auto kt = KernelTypes::of_nt(m_dbg);
    if (!kt) {
        return tl::unexpected(kt.error());
    }
    auto index = kt->types().find(type);
    if (!index) {
        return make_error(Errc::NotFound, std::string("nt's PDB has no ") + type);
    }
    DxValue o;
    o.kind = DxValue::Kind::Object;
    o.types = &kt->types();
    o.type = *index;
    o.address = address;
    return o;
}

Result<uint64_t> DxEvaluator::process_id(uint64_t eprocess) {
    auto kt = KernelTypes::of_nt(m_dbg);
    return kt ? kt->read_unsigned(eprocess, "_EPROCESS", "UniqueProcessId")
              : tl::unexpected(kt.error());
}

Result<std::string> DxEvaluator::process_name(uint64_t eprocess) {
    auto kt = KernelTypes::of_nt(m_dbg);
    return kt ? kt->read_char_array(eprocess, "_EPROCESS", "ImageFileName")
              : tl::unexpected(kt.error());
}

Result<uint64_t> DxEvaluator::thread_id(uint64_t ethread) {
    auto kt = KernelTypes::of_nt(m_dbg);
    return kt ? kt->read_unsigned(ethread, "_ETHREAD", "Cid.UniqueThread")
              : tl::unexpected(kt.error());
}

Result<uint64_t> DxEvaluator::thread_ip(uint64_t ethread) {
    auto kt = KernelTypes::of_nt(m_dbg);
    if (!kt) {
        return tl::unexpected(kt.error());
    }
    ThreadState ts(m_dbg, *kt);
    auto info = ts.thread(ethread);
    if (!info) {
        return tl::unexpected(info.error());
    }
    auto ctx = ts.saved_context(*info);
    if (!ctx) {
        return tl::unexpected(ctx.error());
    }
    return ctx->Rip;
}

Result<DxValue> DxEvaluator::member(const DxValue& v, std::string_view name) {
    if (v.kind == DxValue::Kind::Process || v.kind == DxValue::Kind::Thread) {
        const bool proc = v.kind == DxValue::Kind::Process;
        for (auto& c : children(v).items) {
            if (c.name == name) {
                return c.value;
            }
        }
        return make_error(Errc::NotFound, "No property '" + std::string(name) + "' on the " +
                                              (proc ? "process" : "thread") + " object");
    }
    auto p = load_pointer(v);
    if (!p) {
        return p;
    }
    DxValue o = *p;
    if (o.kind == DxValue::Kind::Pointer) {
        o.kind = DxValue::Kind::Object; // dx lets '.' reach through a pointer
    }
    const PdbType* t = resolved(o);
    if (!t || (t->kind != PdbType::Kind::Struct && t->kind != PdbType::Kind::Union)) {
        return make_error(Errc::InvalidArgument,
                          "Cannot find the field '" + std::string(name) + "': not a structure");
    }
    for (const auto& f : t->fields) {
        if (!f.is_static && f.name == name) {
            DxValue m;
            m.kind = DxValue::Kind::Object;
            m.types = o.types;
            m.type = f.type;
            m.address = o.address + f.offset;
            return m;
        }
    }
    std::string type = o.types->c_name(o.type);
    for (const char* kw : {"struct ", "union ", "class "}) {
        if (type.rfind(kw, 0) == 0) {
            type.erase(0, std::strlen(kw));
        }
    }
    return make_error(Errc::NotFound, "No field '" + std::string(name) + "' in " + type);
}

Result<DxValue> DxEvaluator::index(const DxValue& v, uint64_t i) {
    if (v.kind == DxValue::Kind::ThreadList) {
        // Keyed by thread id, as the children are named: Threads[0x18].
        auto c = children(v, SIZE_MAX);
        for (auto& child : c.items) {
            if (child.name == "[" + hex_0x(i) + "]") {
                return child.value;
            }
        }
        if (c.error) {
            return make_error(Errc::NotFound, *c.error);
        }
        return make_error(Errc::NotFound, "No thread with id " + hex_0x(i) + " in the process");
    }
    const PdbType* t = resolved(v);
    DxValue base = v;
    uint32_t element = 0;
    if (t && t->kind == PdbType::Kind::Array && v.kind == DxValue::Kind::Object) {
        element = t->element;
    } else {
        auto p = load_pointer(v);
        if (!p) {
            return p;
        }
        if (p->kind != DxValue::Kind::Pointer) {
            return make_error(Errc::InvalidArgument,
                              "Cannot index a value that is neither an array nor a pointer");
        }
        base = *p;
        element = p->type;
    }
    const PdbType* e = v.types->get(element);
    const uint64_t size = e && e->size ? e->size : 1;
    DxValue o;
    o.kind = DxValue::Kind::Object;
    o.types = v.types;
    o.type = element;
    o.address = base.address + i * size;
    return o;
}

bool DxEvaluator::expandable(const DxValue& v) const {
    switch (v.kind) {
    case DxValue::Kind::Process:
    case DxValue::Kind::Thread:
    case DxValue::Kind::ThreadList:
        return true;
    case DxValue::Kind::Number:
    case DxValue::Kind::Text:
    case DxValue::Kind::Untyped:
        return false;
    default:
        break;
    }
    const PdbType* t = resolved(v);
    if (!t) {
        return false;
    }
    if (t->kind == PdbType::Kind::Pointer || v.kind == DxValue::Kind::Pointer) {
        DxValue pointee;
        pointee.kind = DxValue::Kind::Object;
        pointee.types = v.types;
        pointee.type = v.kind == DxValue::Kind::Pointer ? v.type : t->element;
        const PdbType* pt = resolved(pointee);
        return pt && (pt->kind == PdbType::Kind::Struct || pt->kind == PdbType::Kind::Union);
    }
    return t->kind == PdbType::Kind::Struct || t->kind == PdbType::Kind::Union ||
           (t->kind == PdbType::Kind::Array && array_count(*v.types, *t) > 0);
}

DxChildren DxEvaluator::children(const DxValue& v, size_t max) {
    DxChildren out;
    const auto add = [&](std::string name, DxValue value, std::optional<uint64_t> offset = {}) {
        if (out.items.size() >= max) {
            out.truncated = true;
            return false;
        }
        out.items.push_back({std::move(name), offset, std::move(value)});
        return true;
    };
    switch (v.kind) {
    case DxValue::Kind::Process: {
        auto ko = nt_object("_EPROCESS", v.address);
        if (!ko) {
            out.error = ko.error().message;
            return out;
        }
        add("KernelObject", *ko);
        if (auto name = process_name(v.address)) {
            DxValue t;
            t.kind = DxValue::Kind::Text;
            t.text = *name;
            add("Name", t);
        }
        if (auto id = process_id(v.address)) {
            DxValue n;
            n.address = *id;
            add("Id", n);
        }
        {
            // What WinDbg shows as a kernel-mode process's Handle: no handle, a constant.
            DxValue n;
            n.address = 0xf0f0f0f0;
            add("Handle", n);
        }
        DxValue threads;
        threads.kind = DxValue::Kind::ThreadList;
        threads.address = v.address;
        add("Threads", threads);
        return out;
    }
    case DxValue::Kind::Thread: {
        auto ko = nt_object("_ETHREAD", v.address);
        if (!ko) {
            out.error = ko.error().message;
            return out;
        }
        add("KernelObject", *ko);
        if (auto id = thread_id(v.address)) {
            DxValue n;
            n.address = *id;
            add("Id", n);
        }
        return out;
    }
    case DxValue::Kind::ThreadList: {
        auto kt = KernelTypes::of_nt(m_dbg);
        if (!kt) {
            out.error = kt.error().message;
            return out;
        }
        ThreadState ts(m_dbg, *kt);
        auto list = ts.threads_of(v.address);
        if (!list) {
            out.error = list.error().message;
            return out;
        }
        for (uint64_t et : list->threads) {
            DxValue t;
            t.kind = DxValue::Kind::Thread;
            t.address = et;
            auto id = thread_id(et);
            if (!add(id ? "[" + hex_0x(*id) + "]" : "[?]", t)) {
                break;
            }
        }
        if (list->broken && !out.truncated) {
            out.error = "The thread list is broken: " + *list->broken;
        }
        return out;
    }
    case DxValue::Kind::Number:
    case DxValue::Kind::Text:
    case DxValue::Kind::Untyped:
        return out;
    default:
        break;
    }
    auto p = load_pointer(v);
    if (!p) {
        out.error = p.error().message;
        return out;
    }
    DxValue o = *p;
    if (o.kind == DxValue::Kind::Pointer) {
        if (!expandable(o) || o.address == 0) {
            return out;
        }
        o.kind = DxValue::Kind::Object;
    }
    const PdbType* t = resolved(o);
    if (!t) {
        return out;
    }
    if (t->kind == PdbType::Kind::Struct || t->kind == PdbType::Kind::Union) {
        for (const auto& f : t->fields) {
            if (f.is_static) {
                continue;
            }
            DxValue m;
            m.kind = DxValue::Kind::Object;
            m.types = o.types;
            m.type = f.type;
            m.address = o.address + f.offset;
            if (!add(f.name, m, f.offset)) {
                break;
            }
        }
    } else if (t->kind == PdbType::Kind::Array) {
        const PdbType* e = o.types->get(t->element);
        const uint64_t size = e && e->size ? e->size : 1;
        for (uint64_t i = 0, n = array_count(*o.types, *t); i < n; ++i) {
            DxValue m;
            m.kind = DxValue::Kind::Object;
            m.types = o.types;
            m.type = t->element;
            m.address = o.address + i * size;
            if (!add("[" + std::to_string(i) + "]", m)) {
                break;
            }
        }
    }
    return out;
}

} // namespace kdcart::engine
