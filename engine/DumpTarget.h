#pragma once
// A crash dump file as a Target: physical memory from the file (mapped, O(1) page lookup),
// virtual memory through the dump's page tables, the current processor's registers from the
// header and every other processor's from its KPRCB inside the dump. It cannot run and cannot
// be written to.
#include "engine/DumpFile.h"
#include "engine/Target.h"

#include <map>
#include <memory>

namespace kdcart::engine {

class DumpTarget final : public Target {
public:
    // Opens FILE (DumpType 1, 5 or 6; other types give Errc::Unsupported naming the type).
    static Result<std::unique_ptr<DumpTarget>> open(const std::string& path);

    bool can_run() const override { return false; }
    std::string describe() const override { return "dump file " + m_file->path(); }
    [[nodiscard]] Result<protocol::DBGKD_GET_VERSION64> version() override;
    [[nodiscard]] Result<uint64_t> kddebugger_data_address() override {
        return m_file->kd_debugger_data_block();
    }
    uint32_t num_processors() const override { return m_num_processors; }
    uint16_t current_processor() const override { return m_processor; }
    [[nodiscard]] Result<ReadResult> read_virtual(uint64_t address, uint32_t size) override;
    // .cache decodeptes: a page whose PTE is in transition (not valid, Transition set,
    // Prototype clear) is read from the frame the PTE names. Off by default.
    void set_decode_transition_ptes(bool on) { m_decode_transition = on; }
    bool decode_transition_ptes() const { return m_decode_transition; }
    [[nodiscard]] Result<uint32_t> write_virtual(uint64_t address,
                                                 std::span<const uint8_t> data) override;
    [[nodiscard]] Result<ReadResult> read_physical(uint64_t address, uint32_t size) override;
    [[nodiscard]] Result<uint32_t> write_physical(uint64_t address,
                                                  std::span<const uint8_t> data) override;
    uint32_t max_request() const override { return 1u << 20; }
    [[nodiscard]] Result<CONTEXT> get_context(uint16_t cpu) override;
    [[nodiscard]] Result<void> set_context(uint16_t cpu, const CONTEXT& context) override;
    [[nodiscard]] Result<ReadResult> read_control_space(uint16_t cpu, uint64_t index,
                                                        uint32_t size) override;
    [[nodiscard]] Result<uint32_t> write_control_space(uint16_t cpu, uint64_t index,
                                                       std::span<const uint8_t> data) override;
    [[nodiscard]] Result<uint64_t> page_directory(uint16_t cpu) override;

    // ~N on a dump: the view moves to another processor.
    [[nodiscard]] Result<void> set_current_processor(uint16_t cpu);
    // The processor whose context the header holds (matched against each KPRCB's).
    uint16_t crash_processor() const { return m_crash_processor; }
    const DumpFile& file() const { return *m_file; }
    // The stop a dump stands at: the bug check (or the exception record of the header).
    StopEvent stop_event() const;
    // What WinDbg says about the dump's kind when it opens it.
    std::string kind_description() const;

private:
    explicit DumpTarget(std::unique_ptr<DumpFile> file);
    void locate_processors();
    std::optional<uint64_t> read_va_u64(uint64_t va);
    std::optional<uint64_t> prcb(uint16_t cpu);

    std::unique_ptr<DumpFile> m_file;
    uint32_t m_num_processors = 1;
    uint16_t m_processor = 0;
    uint16_t m_crash_processor = 0;
    bool m_kdbg_ok = false;
    protocol::KDDEBUGGER_DATA64 m_kdbg{};
    std::map<uint16_t, CONTEXT> m_contexts; // from the KPRCBs
    bool m_decode_transition = false;
};

} // namespace kdcart::engine
