// Guarded, before LLVM parses the file:
// - deleted streams (size 0xFFFFFFFF) are given size 0 in the caller's copy;
// - the MSF 7.00 superblock: magic, block size (512/1024/2048/4096), free block map (1 or 2),
//   NumBlocks inside the file, the directory's size and block map address inside it;
// - the stream directory: every block number of the directory and of every stream below
//   NumBlocks, stream sizes that fit their block lists, the directory itself complete;
// - the PDB info stream (stream 1): long enough for its header, the named-stream map's string
//   buffer inside the stream, and its hash table's capacity at most 2^20 buckets (LLVM resizes
//   a vector to it before reading anything else) and not below its size; the names NUL-ended
//   and every present key inside them (LLVM strlen()s them unchecked);
// - the DBI stream (stream 3): a file-info substream present (LLVM reads its header through a
//   null pointer otherwise), its module count at most the number of
//   module records (LLVM indexes its offset table with that count, out of bounds otherwise).
#include "engine/MsfGuard.h"

#include <cstring>
#include <string>
#include <vector>

namespace kdcart::engine {

namespace {

constexpr char kMagic[] = "Microsoft C/C++ MSF 7.00\r\n\x1a"
                          "DS\0\0";
constexpr size_t kMagicSize = 32;
constexpr uint32_t kMaxBuckets = 1u << 20;

uint32_t u32(const uint8_t* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

Result<void> bad(const std::string& what) {
    return make_error(Errc::Malformed, "not a valid PDB: " + what);
}

} // namespace

Result<void> check_msf(uint8_t* data, size_t size) {
    if (size < 56 || std::memcmp(data, kMagic, kMagicSize) != 0) {
        return bad("no MSF 7.00 superblock");
    }
    const uint32_t block_size = u32(data + 32);
    const uint32_t free_map = u32(data + 36);
    const uint32_t num_blocks = u32(data + 40);
    const uint32_t dir_bytes = u32(data + 44);
    const uint32_t block_map = u32(data + 52);
    if (block_size != 512 && block_size != 1024 && block_size != 2048 && block_size != 4096) {
        return bad("block size " + std::to_string(block_size));
    }
    if (free_map != 1 && free_map != 2) {
        return bad("free block map " + std::to_string(free_map));
    }
    if (num_blocks == 0 || uint64_t{num_blocks} * block_size > size) {
        return bad("the file is shorter than its " + std::to_string(num_blocks) + " blocks");
    }
    const uint64_t dir_blocks = (uint64_t{dir_bytes} + block_size - 1) / block_size;
    if (dir_bytes < 4 || block_map >= num_blocks || dir_blocks * 4 > block_size) {
        return bad("stream directory of " + std::to_string(dir_bytes) + " bytes");
    }
    auto block = [&](uint32_t n) { return data + uint64_t{n} * block_size; };
    // The directory, gathered from its blocks.
    std::vector<uint8_t> dir;
    std::vector<uint32_t> dir_block_numbers;
    dir.reserve(dir_bytes);
    for (uint64_t i = 0; i < dir_blocks; ++i) {
        const uint32_t b = u32(block(block_map) + i * 4);
        if (b >= num_blocks) {
            return bad("directory block " + std::to_string(b) + " outside the file");
        }
        dir_block_numbers.push_back(b);
        const size_t take = std::min<size_t>(block_size, dir_bytes - dir.size());
        dir.insert(dir.end(), block(b), block(b) + take);
    }
    // A byte of the directory in the file (to give deleted streams size 0 there).
    auto dir_byte = [&](size_t offset) {
        return block(dir_block_numbers[offset / block_size]) + offset % block_size;
    };
    const uint32_t num_streams = u32(dir.data());
    if (uint64_t{num_streams} * 4 + 4 > dir.size()) {
        return bad(std::to_string(num_streams) + " streams in a directory of " +
                   std::to_string(dir.size()) + " bytes");
    }
    std::vector<std::vector<uint32_t>> streams(num_streams);
    std::vector<uint32_t> sizes(num_streams);
    size_t at = 4 + size_t{num_streams} * 4;
    for (uint32_t s = 0; s < num_streams; ++s) {
        uint32_t len = u32(dir.data() + 4 + s * 4);
        if (len == 0xFFFFFFFFu) {
            len = 0; // a deleted stream: size 0 for LLVM too
            for (size_t k = 0; k < 4; ++k) {
                *dir_byte(4 + s * 4 + k) = 0;
            }
        }
        sizes[s] = len;
        const uint64_t n = (uint64_t{len} + block_size - 1) / block_size;
        if (n > num_blocks || at + n * 4 > dir.size()) {
            return bad("stream " + std::to_string(s) + " of " + std::to_string(len) +
                       " bytes does not fit the directory");
        }
        for (uint64_t i = 0; i < n; ++i, at += 4) {
            const uint32_t b = u32(dir.data() + at);
            if (b >= num_blocks) {
                return bad("block " + std::to_string(b) + " of stream " + std::to_string(s) +
                           " outside the file");
            }
            streams[s].push_back(b);
        }
    }
    if (num_streams < 2) {
        return {}; // LLVM reports the missing info stream itself
    }
    // The info stream, up to its named-stream map's hash table header.
    std::vector<uint8_t> info;
    for (uint32_t b : streams[1]) {
        const size_t take = std::min<size_t>(block_size, sizes[1] - info.size());
        info.insert(info.end(), block(b), block(b) + take);
    }
    if (info.size() < 28 + 4) {
        return {}; // too short: LLVM refuses it cleanly
    }
    const uint32_t strings = u32(info.data() + 28);
    const uint64_t table = 32 + uint64_t{strings};
    if (table + 8 > info.size()) {
        return bad("named stream map past the end of the info stream");
    }
    const uint32_t entries = u32(info.data() + table);
    const uint32_t capacity = u32(info.data() + table + 4);
    if (capacity > kMaxBuckets || entries > capacity) {
        return bad("named stream map of " + std::to_string(capacity) + " buckets");
    }
    // Each present bucket's key is an offset into the string buffer that LLVM reads with
    // strlen, unchecked (PDBFile::getStringTable looks up "/names" that way): keys inside the
    // buffer, and the buffer ending in a NUL.
    if (strings > 0 && info[32 + strings - 1] != 0) {
        return bad("named stream map's names do not end in a NUL");
    }
    if (table + 12 <= info.size()) {
        const uint32_t present_words = u32(info.data() + table + 8);
        uint64_t pos = table + 12 + uint64_t{present_words} * 4;
        if (pos + 4 <= info.size()) {
            const uint32_t deleted_words = u32(info.data() + pos);
            uint64_t kv = pos + 4 + uint64_t{deleted_words} * 4;
            for (uint64_t w = 0; w < present_words; ++w) {
                const uint32_t bits = u32(info.data() + table + 12 + w * 4);
                for (int bit = 0; bit < 32; ++bit) {
                    if (((bits >> bit) & 1u) == 0) {
                        continue;
                    }
                    if (kv + 8 > info.size()) {
                        break; // LLVM reports the short table itself
                    }
                    if (u32(info.data() + kv) >= strings) {
                        return bad("named stream map key outside its names");
                    }
                    kv += 8;
                }
            }
        }
    }
    if (num_streams < 4 || sizes[3] < 64) {
        return {};
    }
    // The DBI stream: the file-info substream's module count must not exceed the module
    // records of the module-info substream (LLVM indexes its table of records by that count).
    std::vector<uint8_t> dbi;
    for (uint32_t b : streams[3]) {
        const size_t take = std::min<size_t>(block_size, sizes[3] - dbi.size());
        dbi.insert(dbi.end(), block(b), block(b) + take);
    }
    const uint64_t mod_end = 64 + uint64_t{u32(dbi.data() + 24)};
    const uint64_t files_at = mod_end + u32(dbi.data() + 28) + u32(dbi.data() + 32);
    const uint32_t file_info_size = u32(dbi.data() + 36);
    if (mod_end > dbi.size() || files_at + 4 > dbi.size()) {
        return {}; // LLVM refuses inconsistent substream sizes itself
    }
    if (file_info_size < 4) {
        // LLVM accepts it and then reads the module count through a null header.
        return bad("DBI stream without a file info substream");
    }
    uint32_t records = 0;
    for (uint64_t pos = 64; pos < mod_end; ++records) {
        pos += 64; // the fixed part of a module record
        for (int str = 0; str < 2; ++str) {
            while (pos < mod_end && dbi[pos] != 0) {
                ++pos;
            }
            ++pos; // the NUL
        }
        if (pos > mod_end) {
            break;
        }
        pos = (pos + 3) & ~uint64_t{3};
    }
    uint16_t modules;
    std::memcpy(&modules, dbi.data() + files_at, 2);
    if (modules > records) {
        return bad(std::to_string(modules) + " modules named, " + std::to_string(records) +
                   " module records");
    }
    return {};
}

} // namespace kdcart::engine
