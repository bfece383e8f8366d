#pragma once
// Reader of Windows x64 kernel crash dump files: full (DumpType 1, run list) and bitmap
// (DumpType 5 and 6) dumps. The file is mapped read-only and never read as a whole; every
// header value is checked before it is used, so truncated, corrupted or hostile files give an
// Error, never a crash.
//
// Short files: a dump whose last pages are missing from the file (a copy that was cut, or a
// capture that was interrupted) is opened when the header agrees with itself (RequiredDumpSpace
// equals the size the run list / bitmap implies) or the dump is marked incomplete (ValidDump is
// not 'DU64'); the missing pages read as unreadable and warnings() says how many there are.
// A complete dump whose page tables point past the end of the file and past its own
// RequiredDumpSpace is refused as corrupted.
//
// The mapping is advised MADV_RANDOM: a debugger's reads are scattered, and the kernel's
// read-around (128 KiB per fault) made 4 KiB reads ~100x slower in the benchmark.
// The mapping stays valid while the DumpFile lives; shrinking the file under an open DumpFile
// is not supported (reads of the cut part would fault).
#include "engine/DumpFormat.h"
#include "engine/Types.h"
#include "transport/Error.h"

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kdcart::engine {

// A range of consecutive PFNs.
struct PageRange {
    uint64_t first_pfn = 0;
    uint64_t count = 0;
    uint64_t end_pfn() const { return first_pfn + count; }
    bool operator==(const PageRange&) const = default;
};

class DumpFile {
  public:
    static Result<std::unique_ptr<DumpFile>> open(const std::string& path);
    ~DumpFile();
    DumpFile(const DumpFile&) = delete;
    DumpFile& operator=(const DumpFile&) = delete;

    const std::string& path() const { return path_; }
    uint64_t file_size() const { return size_; }
    // Everything noteworthy that did not prevent opening (incomplete dump, truncated file...).
    const std::vector<std::string>& warnings() const { return warnings_; }

    const DUMP_HEADER64& header() const { return header_; }
    uint32_t dump_type() const { return header_.DumpType; }
    std::string_view dump_type_name() const { return engine::dump_type_name(header_.DumpType); }
    bool is_bitmap() const { return bitmap_; }
    bool complete() const { return header_.ValidDump == DUMP_VALID_DUMP64; }
    // Bitmap dumps only: the summary header at 0x2000.
    const DUMP_BITMAP_HEADER64& bitmap_header() const { return bitmap_header_; }

    // The context of the current (crashing) processor, as stored in the header.
    const CONTEXT& context() const { return header_.ContextRecord; }
    const EXCEPTION_RECORD64& exception() const { return header_.Exception; }
    uint32_t bugcheck_code() const { return header_.BugCheckCode; }
    std::array<uint64_t, 4> bugcheck_parameters() const {
        return {header_.BugCheckParameter1, header_.BugCheckParameter2, header_.BugCheckParameter3,
                header_.BugCheckParameter4};
    }
    uint64_t kd_debugger_data_block() const { return header_.KdDebuggerDataBlock; }
    // CR3 with the PCID bits (low 12) cleared.
    uint64_t directory_table_base() const { return header_.DirectoryTableBase & ~uint64_t{0xFFF}; }
    uint64_t ps_loaded_module_list() const { return header_.PsLoadedModuleList; }
    uint64_t ps_active_process_head() const { return header_.PsActiveProcessHead; }
    uint64_t pfn_database() const { return header_.PfnDataBase; }
    uint32_t number_processors() const { return header_.NumberProcessors; }
    uint32_t machine_type() const { return header_.MachineImageType; }
    uint32_t major_version() const { return header_.MajorVersion; }
    uint32_t build() const { return header_.MinorVersion; }
    uint64_t system_time() const { return header_.SystemTime; } // FILETIME
    uint64_t system_up_time() const { return header_.SystemUpTime; }
    // The comment up to its NUL; empty when the field only holds the 'PAGE' fill.
    std::string comment() const;

    // The 4 KiB of PFN `pfn` inside the mapping, or nothing when the dump does not hold it
    // (not in a run / bit clear / beyond the end of a short file). O(1) for bitmaps (rank
    // index), O(log runs) for full dumps.
    std::optional<std::span<const uint8_t>> page(uint64_t pfn) const;
    // Where that page's bytes are in the file.
    std::optional<uint64_t> page_offset(uint64_t pfn) const;
    // Physical memory as the dump holds it: valid[i] false for bytes of absent pages.
    MemoryBlock read_physical(uint64_t pa, size_t size) const;

    // Every PFN whose page the file holds, as ascending maximal ranges.
    std::vector<PageRange> present_ranges() const;
    // How many pages the file holds (excluding pages cut off a short file).
    uint64_t present_pages() const { return present_pages_; }
    // How many pages the header describes but the file is too short to hold.
    uint64_t missing_pages() const { return missing_pages_; }

  private:
    DumpFile() = default;
    Result<void> validate();
    Result<void> validate_runs();
    Result<void> validate_bitmap();
    Result<void> check_data_end(uint64_t data_start, uint64_t pages);
    bool bit(uint64_t pfn) const;
    uint64_t rank(uint64_t pfn) const; // set bits below pfn
    uint64_t word(uint64_t index) const {
        return blocks_[index / kWordsPerBlock * kBlockStride + 1 + index % kWordsPerBlock];
    }

    struct Run {
        uint64_t base = 0;
        uint64_t count = 0;
        uint64_t first_index = 0; // index of the run's first page in the file's page order
    };

    std::string path_;
    int fd_ = -1;
    const uint8_t* map_ = nullptr;
    uint64_t size_ = 0;
    DUMP_HEADER64 header_{};
    DUMP_BITMAP_HEADER64 bitmap_header_{};
    bool bitmap_ = false;
    uint64_t data_start_ = 0;    // file offset of page index 0
    uint64_t stored_pages_ = 0;  // pages the header describes
    uint64_t present_pages_ = 0; // of which the file holds
    uint64_t missing_pages_ = 0;
    std::vector<Run> runs_; // sorted by base
    // Bitmap: a copy of the bits interleaved with a rank index, per 512-bit block the number of
    // set bits before the block followed by the block's 8 words, so that a lookup touches one
    // or two cache lines. 1.125 bytes per 8 PFNs (2.25 MiB for 64 GiB of RAM).
    static constexpr uint64_t kWordsPerBlock = 8;
    static constexpr uint64_t kBlockStride = 1 + kWordsPerBlock;
    uint64_t bitmap_bits_ = 0;
    std::vector<uint64_t> blocks_;
    std::vector<std::string> warnings_;
};

} // namespace kdcart::engine
