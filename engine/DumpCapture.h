#pragma once
// Capturing a crash dump of a live (stopped) target: which physical pages (every run of
// MmPhysicalMemoryBlock for /f; for /k the pages kernel address space maps plus the page-table
// pages, found by walking the page tables from the DTB), the header as Windows fills it, and the
// page reads in the largest requests the link allows, streamed into a resumable DumpWriter.
// Reports progress and stops cleanly when cancelled; never prints.
#include "engine/DumpWriter.h"

#include <functional>

namespace kdcart::engine {

class Debugger;

enum class CaptureKind {
    Complete, // .dump /f: every physical page
    Kernel,   // .dump /k (/ka): kernel-mapped pages and the page tables
};

struct CapturePlan {
    DumpPlan plan;
    uint64_t pages = 0;         // pages to read
    uint64_t bytes_on_wire = 0; // estimate of what reading them costs on this link
    std::vector<std::pair<uint64_t, uint64_t>> physical_runs; // MmPhysicalMemoryBlock
    uint64_t page_tables = 0;   // /k: table pages found
    double payload_rate = 0;    // bytes/s of page data this link carried in a probe read
    double seconds_estimate = 0;
    // Registers written into each processor's CONTEXT inside the dump (as QEMU's writer does),
    // so that the dump shows what the debugger showed: (pfn, offset in page, bytes).
    struct Overlay {
        uint64_t pfn = 0;
        uint32_t offset = 0;
        std::vector<uint8_t> bytes;
    };
    std::vector<Overlay> overlays;
};

struct CaptureProgress {
    uint64_t pages_done = 0;  // including pages done by an earlier, interrupted run
    uint64_t pages_total = 0;
    uint64_t pages_this_run = 0;
    uint64_t bytes_this_run = 0;
    double seconds = 0;       // since this run started
    bool resumed = false;
    uint64_t resumed_at = 0;  // pages already in the file when this run started
};

struct CaptureOptions {
    std::string path;
    CaptureKind kind = CaptureKind::Kernel;
    bool overwrite = false;  // /o
    std::string comment;     // /c
    // Polled between requests; true stops the capture (the file stays resumable).
    std::function<bool()> cancelled;
    // Called after every request.
    std::function<void(const CaptureProgress&)> progress;
};

struct CaptureResult {
    DumpStats stats;
    CaptureProgress progress;
    bool resumed = false;
    std::string note; // why an existing partial file was started over
    DumpKind kind = DumpKind::BitmapKernel;
};

// Works out what a capture of `kind` holds (reads the target's page tables for /k).
[[nodiscard]] Result<CapturePlan> plan_capture(Debugger& dbg, CaptureKind kind,
                                               const std::string& comment,
                                               const std::function<bool()>& cancelled = {});
// Runs a planned capture. Errc::Interrupted when cancelled; the partial file stays resumable.
[[nodiscard]] Result<CaptureResult> run_capture(Debugger& dbg, const CapturePlan& plan,
                                                const CaptureOptions& options);

} // namespace kdcart::engine
