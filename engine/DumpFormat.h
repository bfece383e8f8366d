#pragma once
// Windows x64 kernel crash dump files ("PAGEDU64"): the on-disk structures, with the SDK's
// names. Layouts from ../shared/reference/dump-format.md §2-§4 and §8; every size and every
// offset the code relies on is proven at compile time. Decode by memcpy, never by casting a
// mapping.
#include "protocol/dbgkd_structs.h"

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <type_traits>

namespace kdcart::engine {

inline constexpr uint64_t kDumpPageSize = 0x1000;
inline constexpr unsigned kDumpPageShift = 12;
// Physical addresses have at most 52 bits on x64, so PFNs have at most 40.
inline constexpr uint64_t kDumpMaxPfn = uint64_t{1} << 40;

// ---- signatures (little-endian u32 of the ASCII text) ----
inline constexpr uint32_t DUMP_SIGNATURE64 = 0x45474150;       // 'PAGE'
inline constexpr uint32_t DUMP_VALID_DUMP64 = 0x34365544;      // 'DU64'
inline constexpr uint32_t DUMP_VALID_DUMP32 = 0x504D5544;      // 'DUMP' (32-bit dumps)
inline constexpr uint32_t DUMP_SUMMARY_SIGNATURE = 0x504D4453; // 'SDMP'
inline constexpr uint32_t DUMP_FULL_SIGNATURE = 0x504D4446;    // 'FDMP'
inline constexpr uint32_t DUMP_SUMMARY_VALID = 0x504D5544;     // 'DUMP' (summary ValidDump)
inline constexpr uint32_t DUMP_RANGE_SIGNATURE = 0x504D4452;   // 'RDMP' (types 8/9/0xA)

// ---- DUMP_HEADER64.DumpType ----
enum : uint32_t {
    DUMP_TYPE_FULL = 1,              // complete memory dump, run list
    DUMP_TYPE_SUMMARY = 2,           // old kernel summary dump
    DUMP_TYPE_HEADER = 3,            // header only
    DUMP_TYPE_TRIAGE = 4,            // small memory dump / kernel minidump
    DUMP_TYPE_BITMAP_FULL = 5,       // bitmap dump of (nearly) all pages, "active memory dump"
    DUMP_TYPE_BITMAP_KERNEL = 6,     // bitmap dump of kernel pages
    DUMP_TYPE_AUTOMATIC = 7,         // a configuration value only, never in a file
    DUMP_TYPE_KERNEL_RANGE = 8,      // not in the SDK: newer dbgeng "RDMP" .dump /k
    DUMP_TYPE_KERNEL_USER_RANGE = 9, // not in the SDK: newer dbgeng "RDMP" .dump /ka
    DUMP_TYPE_COMPLETE_RANGE = 0xA,  // not in the SDK: newer dbgeng "RDMP" .dump /f
};

// A short human name for a DumpType value ("full", "bitmap kernel", ...); "unknown" otherwise.
constexpr std::string_view dump_type_name(uint32_t type) {
    switch (type) {
    case DUMP_TYPE_FULL:
        return "full";
    case DUMP_TYPE_SUMMARY:
        return "kernel summary";
    case DUMP_TYPE_HEADER:
        return "header only";
    case DUMP_TYPE_TRIAGE:
        return "triage/small memory";
    case DUMP_TYPE_BITMAP_FULL:
        return "bitmap full";
    case DUMP_TYPE_BITMAP_KERNEL:
        return "bitmap kernel";
    case DUMP_TYPE_AUTOMATIC:
        return "automatic";
    case DUMP_TYPE_KERNEL_RANGE:
        return "kernel range";
    case DUMP_TYPE_KERNEL_USER_RANGE:
        return "kernel and user range";
    case DUMP_TYPE_COMPLETE_RANGE:
        return "complete range";
    default:
        return "unknown";
    }
}

// DUMP_HEADER64.Attributes bits (DUMP_FILE_ATTRIBUTES)
inline constexpr uint32_t DUMP_ATTRIBUTE_HIBER_CRASH = 1u << 0;
inline constexpr uint32_t DUMP_ATTRIBUTE_DUMP_DEVICE_POWER_OFF = 1u << 1;
inline constexpr uint32_t DUMP_ATTRIBUTE_INSUFFICIENT_DUMPFILE_SIZE = 1u << 2;
inline constexpr uint32_t DUMP_ATTRIBUTE_KERNEL_GENERATED_TRIAGE_DUMP = 1u << 3;
inline constexpr uint32_t DUMP_ATTRIBUTE_LIVE_DUMP_GENERATED_DUMP = 1u << 4;
inline constexpr uint32_t DUMP_ATTRIBUTE_DUMP_IS_GENERATED_OFFLINE = 1u << 5;
inline constexpr uint32_t DUMP_ATTRIBUTE_FILTER_DUMP_FILE = 1u << 6;
inline constexpr uint32_t DUMP_ATTRIBUTE_EARLY_BOOT_CRASH = 1u << 7;
inline constexpr uint32_t DUMP_ATTRIBUTE_ENCRYPTED_DUMP_DATA = 1u << 8;
inline constexpr uint32_t DUMP_ATTRIBUTE_DECRYPTED_DUMP = 1u << 9;

// BugCheckCode of a dump of a machine that did not crash (what QEMU/elf2dmp use).
inline constexpr uint32_t LIVE_SYSTEM_DUMP = 0x161;

// The exception record of the header has the KD state change's layout (§5).
using EXCEPTION_RECORD64 = protocol::DBGKM_EXCEPTION_RECORD64;

// ---- full dumps (type 1): the run list at 0x088 (§3) ----
struct PHYSICAL_MEMORY_RUN64 {
    /* 0x00 */ uint64_t BasePage;
    /* 0x08 */ uint64_t PageCount;
};
static_assert(sizeof(PHYSICAL_MEMORY_RUN64) == 16);

// 43 runs fill the 704-byte union (the SDK's nominal 700-byte buffer plus alignment).
inline constexpr uint32_t kDumpMaxRuns = 43;

struct PHYSICAL_MEMORY_DESCRIPTOR64 {
    /* 0x00 */ uint32_t NumberOfRuns;
    /* 0x04 */ uint32_t Padding;
    /* 0x08 */ uint64_t NumberOfPages;
    /* 0x10 */ PHYSICAL_MEMORY_RUN64 Run[kDumpMaxRuns];
};
static_assert(sizeof(PHYSICAL_MEMORY_DESCRIPTOR64) == 704);
static_assert(offsetof(PHYSICAL_MEMORY_DESCRIPTOR64, NumberOfPages) == 0x08);
static_assert(offsetof(PHYSICAL_MEMORY_DESCRIPTOR64, Run) == 0x10);

inline constexpr size_t DUMP_PHYSICAL_MEMORY_BLOCK_SIZE = 704; // 700 + 4 bytes of alignment
inline constexpr size_t DUMP_CONTEXT_RECORD_SIZE = 3000;
inline constexpr size_t DUMP_COMMENT_SIZE = 128;
inline constexpr size_t DUMP_RESERVED0_SIZE = 4008;

// ---- DUMP_HEADER64: the first 0x2000 bytes of every x64 dump (§2) ----
struct DUMP_HEADER64 {
    /* 0x0000 */ uint32_t Signature;
    /* 0x0004 */ uint32_t ValidDump;
    /* 0x0008 */ uint32_t MajorVersion;
    /* 0x000C */ uint32_t MinorVersion;
    /* 0x0010 */ uint64_t DirectoryTableBase;
    /* 0x0018 */ uint64_t PfnDataBase;
    /* 0x0020 */ uint64_t PsLoadedModuleList;
    /* 0x0028 */ uint64_t PsActiveProcessHead;
    /* 0x0030 */ uint32_t MachineImageType;
    /* 0x0034 */ uint32_t NumberProcessors;
    /* 0x0038 */ uint32_t BugCheckCode;
    /* 0x003C */ uint32_t Padding0;
    /* 0x0040 */ uint64_t BugCheckParameter1;
    /* 0x0048 */ uint64_t BugCheckParameter2;
    /* 0x0050 */ uint64_t BugCheckParameter3;
    /* 0x0058 */ uint64_t BugCheckParameter4;
    /* 0x0060 */ char VersionUser[32];
    /* 0x0080 */ uint64_t KdDebuggerDataBlock;
    /* 0x0088 */ union {
        PHYSICAL_MEMORY_DESCRIPTOR64 PhysicalMemoryBlock;
        uint8_t PhysicalMemoryBlockBuffer[DUMP_PHYSICAL_MEMORY_BLOCK_SIZE];
    };
    /* 0x0348 */ union {
        protocol::CONTEXT ContextRecord;
        uint8_t ContextRecordBuffer[DUMP_CONTEXT_RECORD_SIZE];
    };
    /* 0x0F00 */ EXCEPTION_RECORD64 Exception;
    /* 0x0F98 */ uint32_t DumpType;
    /* 0x0F9C */ uint32_t Padding1;
    /* 0x0FA0 */ uint64_t RequiredDumpSpace;
    /* 0x0FA8 */ uint64_t SystemTime;
    /* 0x0FB0 */ char Comment[DUMP_COMMENT_SIZE];
    /* 0x1030 */ uint64_t SystemUpTime;
    /* 0x1038 */ uint32_t MiniDumpFields;
    /* 0x103C */ uint32_t SecondaryDataState;
    /* 0x1040 */ uint32_t ProductType;
    /* 0x1044 */ uint32_t SuiteMask;
    /* 0x1048 */ uint32_t WriterStatus;
    /* 0x104C */ uint8_t Unused1;
    /* 0x104D */ uint8_t KdSecondaryVersion;
    /* 0x104E */ uint16_t Unused2;
    /* 0x1050 */ uint32_t Attributes;
    /* 0x1054 */ uint32_t BootId;
    /* 0x1058 */ uint8_t Reserved0[DUMP_RESERVED0_SIZE];
};
static_assert(std::is_trivially_copyable_v<DUMP_HEADER64>);
static_assert(std::is_standard_layout_v<DUMP_HEADER64>);
static_assert(sizeof(DUMP_HEADER64) == 0x2000);
static_assert(sizeof(protocol::CONTEXT) == 0x4D0);
static_assert(sizeof(EXCEPTION_RECORD64) == 0x98);
static_assert(offsetof(DUMP_HEADER64, ValidDump) == 0x004);
static_assert(offsetof(DUMP_HEADER64, MajorVersion) == 0x008);
static_assert(offsetof(DUMP_HEADER64, MinorVersion) == 0x00C);
static_assert(offsetof(DUMP_HEADER64, DirectoryTableBase) == 0x010);
static_assert(offsetof(DUMP_HEADER64, PfnDataBase) == 0x018);
static_assert(offsetof(DUMP_HEADER64, PsLoadedModuleList) == 0x020);
static_assert(offsetof(DUMP_HEADER64, PsActiveProcessHead) == 0x028);
static_assert(offsetof(DUMP_HEADER64, MachineImageType) == 0x030);
static_assert(offsetof(DUMP_HEADER64, NumberProcessors) == 0x034);
static_assert(offsetof(DUMP_HEADER64, BugCheckCode) == 0x038);
static_assert(offsetof(DUMP_HEADER64, BugCheckParameter1) == 0x040);
static_assert(offsetof(DUMP_HEADER64, BugCheckParameter2) == 0x048);
static_assert(offsetof(DUMP_HEADER64, BugCheckParameter3) == 0x050);
static_assert(offsetof(DUMP_HEADER64, BugCheckParameter4) == 0x058);
static_assert(offsetof(DUMP_HEADER64, VersionUser) == 0x060);
static_assert(offsetof(DUMP_HEADER64, KdDebuggerDataBlock) == 0x080);
static_assert(offsetof(DUMP_HEADER64, PhysicalMemoryBlock) == 0x088);
static_assert(offsetof(DUMP_HEADER64, PhysicalMemoryBlock.NumberOfPages) == 0x090);
static_assert(offsetof(DUMP_HEADER64, PhysicalMemoryBlock.Run) == 0x098);
static_assert(offsetof(DUMP_HEADER64, ContextRecord) == 0x348);
static_assert(offsetof(DUMP_HEADER64, ContextRecord.MxCsr) == 0x348 + 0x34);
static_assert(offsetof(DUMP_HEADER64, ContextRecord.FltSave.MxCsr) == 0x348 + 0x118);
static_assert(offsetof(DUMP_HEADER64, Exception) == 0xF00);
static_assert(offsetof(DUMP_HEADER64, DumpType) == 0xF98);
static_assert(offsetof(DUMP_HEADER64, RequiredDumpSpace) == 0xFA0);
static_assert(offsetof(DUMP_HEADER64, SystemTime) == 0xFA8);
static_assert(offsetof(DUMP_HEADER64, Comment) == 0xFB0);
static_assert(offsetof(DUMP_HEADER64, SystemUpTime) == 0x1030);
static_assert(offsetof(DUMP_HEADER64, MiniDumpFields) == 0x1038);
static_assert(offsetof(DUMP_HEADER64, SecondaryDataState) == 0x103C);
static_assert(offsetof(DUMP_HEADER64, ProductType) == 0x1040);
static_assert(offsetof(DUMP_HEADER64, SuiteMask) == 0x1044);
static_assert(offsetof(DUMP_HEADER64, WriterStatus) == 0x1048);
static_assert(offsetof(DUMP_HEADER64, Unused1) == 0x104C);
static_assert(offsetof(DUMP_HEADER64, KdSecondaryVersion) == 0x104D);
static_assert(offsetof(DUMP_HEADER64, Attributes) == 0x1050);
static_assert(offsetof(DUMP_HEADER64, BootId) == 0x1054);
static_assert(offsetof(DUMP_HEADER64, Reserved0) == 0x1058);

inline constexpr uint64_t kDumpHeaderSize = sizeof(DUMP_HEADER64);

// ---- bitmap dumps (types 5 and 6): the summary header at 0x2000 (§8) ----
struct DUMP_BITMAP_HEADER64 {
    /* 0x00 */ uint32_t Signature; // 'SDMP' or 'FDMP'
    /* 0x04 */ uint32_t ValidDump; // 'DUMP'
    /* 0x08 */ uint32_t DumpOptions;
    /* 0x0C */ uint8_t Reserved[0x14];
    /* 0x20 */ uint64_t HeaderSize; // absolute file offset of the first stored page
    /* 0x28 */ uint64_t Pages;      // set bits = stored pages
    /* 0x30 */ uint64_t BitmapSize; // bits in the bitmap = PFNs covered
    // 0x38: the bitmap, ceil(BitmapSize / 8) bytes, bit n (LSB first) set <=> PFN n stored
};
static_assert(std::is_trivially_copyable_v<DUMP_BITMAP_HEADER64>);
static_assert(sizeof(DUMP_BITMAP_HEADER64) == 0x38);
static_assert(offsetof(DUMP_BITMAP_HEADER64, ValidDump) == 0x04);
static_assert(offsetof(DUMP_BITMAP_HEADER64, DumpOptions) == 0x08);
static_assert(offsetof(DUMP_BITMAP_HEADER64, HeaderSize) == 0x20);
static_assert(offsetof(DUMP_BITMAP_HEADER64, Pages) == 0x28);
static_assert(offsetof(DUMP_BITMAP_HEADER64, BitmapSize) == 0x30);

inline constexpr uint64_t kDumpBitmapHeaderOffset = kDumpHeaderSize;
inline constexpr uint64_t kDumpBitmapOffset = kDumpHeaderSize + sizeof(DUMP_BITMAP_HEADER64);

} // namespace kdcart::engine
