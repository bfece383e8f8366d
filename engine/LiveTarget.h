#pragma once
// A live Windows machine at the end of a KD link: the Target interface over the typed client,
// plus what only a live target has (the session, break-in, continue, state changes), which run
// control uses.
#include "engine/ReadVerifier.h"
#include "engine/Target.h"
#include "protocol/KdClient.h"

#include <functional>
#include <map>
#include <memory>

namespace kdcart::engine {

using transport::Millis;

// What the engine tells the layer above, as it happens.
class EngineDelegate {
public:
    virtual ~EngineDelegate() = default;
    virtual void on_debug_print(std::string_view text) = 0;
    virtual std::string on_debug_prompt(std::string_view prompt) = 0;
    virtual void on_notice(std::string_view text) = 0;
    // An exception the filters say to report without stopping (sxd first chance, sxn).
    virtual void on_exception_passed(const StopEvent& event) { (void)event; }
};

class LiveTarget final : public Target, private protocol::SessionDelegate {
public:
    LiveTarget(std::unique_ptr<transport::PacketLink> link, EngineDelegate* delegate,
               protocol::SessionOptions options = {});
    ~LiveTarget() override;

    bool can_run() const override { return true; }
    std::string describe() const override { return m_session->describe_link(); }
    [[nodiscard]] Result<protocol::DBGKD_GET_VERSION64> version() override;
    [[nodiscard]] Result<uint64_t> kddebugger_data_address() override;
    uint32_t num_processors() const override { return m_num_processors; }
    uint16_t current_processor() const override { return m_processor; }
    [[nodiscard]] Result<ReadResult> read_virtual(uint64_t address, uint32_t size) override;
    [[nodiscard]] Result<uint32_t> write_virtual(uint64_t address,
                                                 std::span<const uint8_t> data) override;
    [[nodiscard]] Result<ReadResult> read_physical(uint64_t address, uint32_t size) override;
    [[nodiscard]] Result<uint32_t> write_physical(uint64_t address,
                                                  std::span<const uint8_t> data) override;
    uint32_t max_request() const override { return m_session->max_transfer(); }
    [[nodiscard]] Result<CONTEXT> get_context(uint16_t cpu) override;
    [[nodiscard]] Result<void> set_context(uint16_t cpu, const CONTEXT& context) override;
    // GetContextEx / SetContextEx while the target takes them. The first refusal (an error
    // status, a short reply, a reply for another range) switches to GetContext / SetContext for
    // the rest of the session, as WinDbg does with the Windows 10 boot debugger; said once in
    // the debug log (-v).
    [[nodiscard]] Result<ContextBytes> get_context_bytes(uint16_t cpu, uint32_t offset,
                                                         uint32_t size) override;
    [[nodiscard]] Result<void> set_context_bytes(uint16_t cpu, uint32_t offset,
                                                 std::span<const uint8_t> bytes) override;
    // False once the target refused GetContextEx or SetContextEx.
    bool context_ex_supported() const { return m_context_ex; }
    [[nodiscard]] Result<ReadResult> read_control_space(uint16_t cpu, uint64_t index,
                                                        uint32_t size) override;
    [[nodiscard]] Result<uint32_t> write_control_space(uint16_t cpu, uint64_t index,
                                                       std::span<const uint8_t> data) override;
    [[nodiscard]] Result<uint64_t> page_directory(uint16_t cpu) override;
    void set_verify_for_dump(bool on) override { m_reads->set_for_dump(on); }

    // ---- live only ----
    // A stop from processor `cpu` of `count`: requests default to it from now on.
    void set_stop_processor(uint16_t cpu, uint16_t level, uint32_t count);
    // Forgets what a stop learnt (CR3 per processor); called on every resume.
    void forget_stop_state() { m_cr3.clear(); }
    // Forgets the version block too (the target rebooted: it may be another build).
    void forget_target() {
        m_cr3.clear();
        m_version.reset();
    }
    // True once after the target started over (reboot, RESET from its side, new KDNET session).
    bool take_reset() {
        bool r = m_target_was_reset;
        m_target_was_reset = false;
        return r;
    }
    void set_delegate(EngineDelegate* delegate) { m_delegate = delegate; }
    EngineDelegate* delegate() const { return m_delegate; }
    void notice(std::string_view text) { on_link_notice(text); }
    protocol::KdSession& session() { return *m_session; }
    protocol::KdClient& client() { return *m_client; }
    // Verified memory reads on a noisy link (.kdverify).
    ReadVerifier& reads() { return *m_reads; }
    // Physical memory without KD packets (1394: the host reads the target's RAM by physical
    // DMA). Bytes from `address` on, fewer when the rest cannot be read that way; what it does
    // not return (or everything, when it fails) is read with ReadPhysicalMemory packets.
    using PhysicalReader = std::function<Result<std::vector<uint8_t>>(uint64_t, uint32_t)>;
    void set_physical_reader(PhysicalReader reader) { m_physical_reader = std::move(reader); }

private:
    // SessionDelegate
    void on_debug_print(std::string_view text) override;
    std::string on_debug_prompt(std::string_view prompt) override;
    void on_link_notice(std::string_view text) override;
    void on_target_reset() override { m_target_was_reset = true; }
    // An answer to GetContextEx/SetContextEx that means "not supported here" (not a link failure).
    bool context_ex_refused(const char* api, const Error& error);

    // ReadPhysicalMemory packets through the verifier.
    [[nodiscard]] Result<ReadResult> read_physical_packets(uint64_t address, uint32_t size);

    EngineDelegate* m_delegate;
    std::unique_ptr<protocol::KdSession> m_session;
    std::unique_ptr<protocol::KdClient> m_client;
    std::unique_ptr<ReadVerifier> m_reads;
    uint16_t m_processor = 0;
    uint32_t m_num_processors = 1;
    bool m_target_was_reset = false;
    std::map<uint16_t, uint64_t> m_cr3; // per processor, while stopped
    std::optional<protocol::DBGKD_GET_VERSION64> m_version;
    bool m_context_ex = true; // GetContextEx/SetContextEx not refused yet
    PhysicalReader m_physical_reader;
};

} // namespace kdcart::engine
