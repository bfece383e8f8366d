#pragma once
// Writer of Windows x64 kernel crash dump files for capture over a slow link: full dumps
// (DumpType 1, run list) and bitmap dumps (DumpType 5 'FDMP' / 6 'SDMP'). Pages are appended
// in ascending PFN order; the file is resumable after a crash, a kill or a full disk.
//
// Crash safety: the dump's ValidDump stays 0 until finish(), so a half-written file never
// looks complete. Every checkpoint (every `checkpoint_pages` pages or `checkpoint_interval`,
// whichever comes first) fdatasyncs the page data, then (bitmap dumps) writes the bitmap and
// Pages for the pages so far and syncs again, then replaces the sidecar FILE.kdpart atomically
// (write FILE.kdpart.tmp, fsync, rename). open() with the same plan on an incomplete FILE whose
// sidecar matches continues after the last checkpoint; anything else starts over.
//
// Existing files: a non-empty file that is not an incomplete dump as this writer leaves it
// ('PAGE' with ValidDump 0) -- a complete dump, a 32-bit dump, any other file -- is refused with
// "FILE already exists (use /o to overwrite)" unless `overwrite`. An incomplete dump is resumed
// (matching sidecar, with or without `overwrite`) or started over. Files are
// created with mode 0600 (a dump holds the whole kernel's memory); a file started over gets
// 0600 too.
#include "engine/DumpFormat.h"
#include "transport/Error.h"

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace kdcart::engine {

enum class DumpKind {
    Full,         // DumpType 1, run list; unreadable pages are stored as zeros
    BitmapFull,   // DumpType 5, 'FDMP' summary; unreadable pages are left out
    BitmapKernel, // DumpType 6, 'SDMP' summary; unreadable pages are left out
};

struct DumpPlan {
    DumpKind kind = DumpKind::BitmapKernel;
    // (base PFN, page count), ascending and not overlapping. Full: the run list (touching runs
    // are merged; at most 43 must remain). Bitmap: the PFNs to store.
    std::vector<std::pair<uint64_t, uint64_t>> runs;
    // Bitmap dumps: bits in the bitmap (PFNs covered); 0 = the end of the last run.
    uint64_t bitmap_bits = 0;
    // The header fields the caller prepared (versions, DTB, KDBG VA, context, bug check...).
    // The writer fills the 0x2000 bytes with 'PAGE', then copies every named field of this
    // struct (padding, unused run slots, the rest of the context area and Reserved0 keep the
    // fill) and sets Signature, ValidDump, DumpType, the run list and RequiredDumpSpace itself.
    DUMP_HEADER64 header{};
    // Anything else that identifies the capture for resuming (e.g. the target's build lab).
    // The resume fingerprint covers kind, runs, bitmap_bits, this string and the header's
    // DirectoryTableBase, KdDebuggerDataBlock, Major/MinorVersion, MachineImageType,
    // NumberProcessors, PsLoadedModuleList and PfnDataBase.
    std::string identity;
};

struct DumpWriterOptions {
    uint32_t checkpoint_pages = 256;
    std::chrono::milliseconds checkpoint_interval{1000};
};

// Where open() left the capture.
struct DumpResume {
    bool resumed = false;          // an interrupted capture of the same plan is being continued
    uint64_t next_index = 0;       // index, in the plan's page order, of the next page to write
    uint64_t pages_stored = 0;     // pages written with data so far
    uint64_t pages_unreadable = 0; // pages found unreadable so far (absent / zero-filled)
    std::string note;              // why an existing file was started over, if it was
};

struct DumpStats {
    uint64_t pages_stored = 0;     // pages written with the target's data
    uint64_t pages_unreadable = 0; // bitmap: left out; full: zero-filled
    uint64_t file_bytes = 0;       // = RequiredDumpSpace
};

class DumpWriter {
  public:
    static Result<std::unique_ptr<DumpWriter>> open(const std::string& path, DumpPlan plan,
                                                    bool overwrite, DumpWriterOptions options = {});
    // Closes without finishing: the partial file and its sidecar stay for a later resume.
    ~DumpWriter();
    DumpWriter(const DumpWriter&) = delete;
    DumpWriter& operator=(const DumpWriter&) = delete;

    const std::string& path() const { return path_; }
    std::string sidecar_path() const { return path_ + ".kdpart"; }
    const DumpResume& resume() const { return resume_; }
    uint64_t total_pages() const { return total_pages_; }
    uint64_t next_index() const { return next_index_; }
    // The PFN write_page expects next; nothing once every page is written.
    std::optional<uint64_t> next_pfn() const;
    DumpStats stats() const;

    // The next page of the plan: its 4 KiB, or nothing when the target could not read it.
    // `pfn` must be next_pfn().
    Result<void> write_page(uint64_t pfn, std::optional<std::span<const uint8_t, 4096>> data);
    // Makes everything written so far durable and resumable (also done periodically).
    Result<void> checkpoint();
    // Completes the file. With pages left: an error, unless `rest_unreadable` (they are then
    // left out of a bitmap dump / zero-filled in a full dump, without writing them).
    Result<DumpStats> finish(bool rest_unreadable = false);

  private:
    DumpWriter() = default;
    Result<void> start_over();
    Result<void> try_resume(std::string& why_not);
    Result<void> write_header();
    Result<void> write_sidecar();
    Result<void> write_bitmap_range(uint64_t first_word, uint64_t end_word);
    Result<void> pwrite_all(const void* data, size_t size, uint64_t offset);
    Result<void> sync(bool metadata);
    Error io_error(const std::string& what, int err) const;
    void seek_index(uint64_t index);
    uint64_t data_start() const { return data_start_; }

    std::string path_;
    DumpPlan plan_;
    DumpWriterOptions options_;
    int fd_ = -1;
    uint64_t fingerprint_ = 0;
    uint64_t total_pages_ = 0;
    uint64_t data_start_ = 0;
    bool bitmap_ = false;
    bool finished_ = false;
    std::optional<Error> failed_; // a write error leaves the writer unusable
    DumpResume resume_;

    // progress
    uint64_t next_index_ = 0;
    size_t run_ = 0;          // run holding next_index_
    uint64_t run_offset_ = 0; // its index inside that run
    uint64_t stored_ = 0;
    uint64_t unreadable_ = 0;
    uint64_t data_end_ = 0;                  // file offset of the next page
    std::vector<uint64_t> bits_;             // bitmap dumps: the bitmap being built
    uint64_t dirty_first_word_ = UINT64_MAX; // bitmap words changed since the last checkpoint
    uint64_t dirty_end_word_ = 0;
    uint64_t since_checkpoint_ = 0;
    std::chrono::steady_clock::time_point last_checkpoint_{};
};

} // namespace kdcart::engine
