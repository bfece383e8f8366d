#pragma once
// dx's values: a data-model expression evaluated to typed objects and their children, for the
// CLI to format (cli/DataModel.cpp). An expression is a C++-like chain over
//   - casts of an address to a pointer to a PDB type: "(nt!_EPROCESS *)0x..." ("struct " too),
//   - typed globals "mod!Variable", MASM numbers and registers (through Debugger::evaluate),
//   - the data model's objects @$curprocess and @$curthread (a process: KernelObject, Name, Id,
//     Threads; a thread: KernelObject, Id), and @$ip / @$scopeip,
//   - '*' (dereference), '&' (address of), ".Field", "->Field", "[index]" and parentheses.
// Every offset comes from the module's PDB types by field name; nothing here prints.
#include "engine/PdbTypes.h"
#include "transport/Error.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kdcart::engine {

class Debugger;

struct DxValue {
    enum class Kind : uint8_t {
        Number,     // a plain 64-bit value (numbers, registers, @$ip): `address`
        Object,     // a typed object in target memory: `type` at `address` (lvalue)
        Pointer,    // a pointer value that is not in memory (a cast): to `type`, value `address`
        Text,       // a string of the data model (a process's Name): `text`
        Process,    // a data-model process: its EPROCESS at `address`
        Thread,     // a data-model thread: its ETHREAD at `address`
        ThreadList, // a process's Threads: the EPROCESS at `address`
        Untyped,    // a symbol without a type at `address`: only '&' (void *) takes it
    };
    Kind kind = Kind::Number;
    const PdbTypes* types = nullptr;
    uint32_t type = 0; // Object: its type (a bit field record for bit fields); Pointer: pointee
    uint64_t address = 0;
    std::string text;
    std::string number_type; // a Number's type when it has one ("unsigned __int64" registers)
};

struct DxChild {
    std::string name;               // "Signature", "[3]", "KernelObject", "[0x4c]"
    std::optional<uint64_t> offset; // a field's offset ("[+0x018]")
    DxValue value;
};

struct DxChildren {
    std::vector<DxChild> items;
    bool truncated = false;           // more children than asked for
    std::optional<std::string> error; // the children could not be listed (shown in their place)
};

class DxEvaluator {
  public:
    // Containers longer than this show their first k_max_children and "[...]", as dx does.
    static constexpr size_t k_max_children = 100;

    explicit DxEvaluator(Debugger& dbg) : m_dbg(dbg) {}

    [[nodiscard]] Result<DxValue> evaluate(std::string_view expression);

    // The type record of an Object/Pointer with const/volatile stripped (nullptr: unknown).
    const PdbType* resolved(const DxValue& v, uint32_t* index = nullptr) const;
    // The raw bits of a scalar Object (integers, enums, bools, floats, pointers; a bit field's
    // bits shifted down), zero-extended; Unreadable with WinDbg's "Unable to read memory at
    // Address 0x.." when the target cannot give them.
    [[nodiscard]] Result<uint64_t> read_scalar(const DxValue& v);
    // An Object of pointer type as the Pointer it holds (its value read); other values as-is.
    [[nodiscard]] Result<DxValue> load_pointer(const DxValue& v);
    // Whether the value has children to show when expanded.
    bool expandable(const DxValue& v) const;
    // Its children: fields, array elements, a pointer's pointee's fields, a data-model object's
    // properties; at most `max` of them.
    DxChildren children(const DxValue& v, size_t max = k_max_children);

    // The code address a data-model thread is at (the processor's rip when it runs, else the
    // rip its switch frame resumes with).
    [[nodiscard]] Result<uint64_t> thread_ip(uint64_t ethread);
    // A thread's id (ETHREAD.Cid.UniqueThread) and a process's (EPROCESS.UniqueProcessId).
    [[nodiscard]] Result<uint64_t> thread_id(uint64_t ethread);
    [[nodiscard]] Result<uint64_t> process_id(uint64_t eprocess);
    [[nodiscard]] Result<std::string> process_name(uint64_t eprocess);

  private:
    struct Parser; // DxParser.cpp
    // "No type (or void) for object at Address ...": what an untyped value can not do.
    static tl::unexpected<Error> untyped(const DxValue& v);
    Result<DxValue> nt_object(const char* type, uint64_t address);
    Result<DxValue> member(const DxValue& v, std::string_view name);
    Result<DxValue> index(const DxValue& v, uint64_t i);
    Result<DxValue> deref(const DxValue& v);

    Debugger& m_dbg;
};

} // namespace kdcart::engine
