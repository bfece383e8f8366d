// libFuzzer target: a PE image's headers as kdcart reads them from target memory or a file
// (engine/PeImage.cpp: file header, optional header, data directories, sections, debug directory
// and its CodeView record), and its x64 unwind data (engine/UnwindInfo.cpp, engine/Unwinder.cpp:
// the exception directory, RUNTIME_FUNCTION search, UNWIND_INFO with chained entries and a
// virtual unwind through them) and uf's flow walk (engine/FunctionFlow.cpp). The input is the
// image mapped at 0x140000000; reads past its end come back short, as unreadable target memory
// does. The last 24 bytes (when there are enough) choose the pc and stack pointer.
//
//   build-fuzz/bin/fuzz_pe_image -max_total_time=60 WORKDIR tests/fuzz/corpus/pe_image
#include "engine/FunctionFlow.h"
#include "engine/PeImage.h"
#include "engine/UnwindInfo.h"
#include "engine/Unwinder.h"

#include <cstddef>
#include <cstdint>
#include <cstring>

using namespace kdcart::engine;

namespace {
constexpr uint64_t kBase = 0x140000000;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    auto read_rva = [&](uint32_t rva, uint32_t n) {
        std::vector<uint8_t> out;
        if (rva < size) {
            const size_t take = std::min<size_t>(n, size - rva);
            out.assign(data + rva, data + rva + take);
        }
        return out;
    };
    if (auto pe = read_pe_image(read_rva)) {
        (void)pe->section_of(pe->entry_point);
        (void)pe->is_code(pe->entry_point);
        if (pe->codeview) {
            (void)pe->codeview->store_key();
            (void)pe->codeview->pdb_file_name();
        }
    }
    if (auto reader = file_image_reader(std::vector<uint8_t>(data, data + size))) {
        (void)read_pe_image(*reader);
    }

    UnwindMemory mem;
    mem.read = [&](uint64_t address, uint32_t n) -> std::vector<uint8_t> {
        if (address < kBase || address - kBase >= size) {
            return {};
        }
        return read_rva(static_cast<uint32_t>(address - kBase), std::min<uint32_t>(n, 1u << 20));
    };
    uint32_t pc_rva = 0x1000;
    uint64_t rsp_off = 0;
    if (size >= 24) {
        std::memcpy(&pc_rva, data + size - 24, 4);
        std::memcpy(&rsp_off, data + size - 16, 8);
        pc_rva %= static_cast<uint32_t>(size);
        rsp_off %= size;
    }
    if (exception_directory(kBase, mem)) {
        if (auto rf = find_runtime_function(kBase, pc_rva, mem)) {
            (void)read_unwind_info(kBase, rf->unwind, mem);
        }
    }
    kdcart::protocol::CONTEXT ctx{};
    ctx.Rip = kBase + pc_rva;
    ctx.Rsp = kBase + rsp_off;
    ctx.Rbp = kBase + (rsp_off / 2);
    for (int frames = 0; frames < 8; ++frames) {
        auto f = unwind_frame(ctx, kBase, mem);
        if (!f || f->caller_rsp <= ctx.Rsp) {
            break;
        }
        ctx = f->caller;
        ctx.Rip = f->return_address;
        ctx.Rsp = f->caller_rsp;
    }
    FlowOptions opt;
    opt.read = mem.read;
    opt.max_instructions = 2000;
    (void)trace_function(kBase + pc_rva, opt);
    return 0;
}
