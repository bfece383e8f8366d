#pragma once
// kdsim's IEEE 1394 side (`kdsim --1394 PATH`): the simulated target's OHCI controller on the
// simulated bus, and NT's 1394 debugger transport (kd-protocol.md §5.2) as a PacketLink for
// KdTarget.
//
// The bus (protocol in transport/FwSimBus.h, served on the AF_UNIX socket PATH, one host at a
// time): GET_INFO answers with the minimal config ROM the target installs (bus info block
// "1394", root directory with 0x0C node capabilities, 0x03 = 0x0050F2, 0x1C = 0x0050F2,
// 0x1D = 2, 0x1E = the 24-bit physical address of DEBUG_1394_CONFIG). Transactions read and
// write the machine's physical memory below 4 GiB (physical DMA, answered whether the machine
// runs or is stopped, as the OHCI physical unit does without the CPU) and read the ROM at CSR
// 0xFFFFF0000400. A host connecting is a cable plugged in: a bus reset.
//
// The debugger transport: DEBUG_1394_CONFIG (tag 0xBABABABA, version 1.0, Id = channel) and
// the two 4 KiB mailboxes sit in low RAM (SIM_1394_*_PA). What KdTarget sends goes into the
// send mailbox (header, Length = ByteCount, payload, then TransferStatus = PENDING), one packet
// at a time, the rest queued; when the host clears the status, a data packet counts as
// delivered and KdTarget gets an ACK event for it (1394 has no ACK packets on the wire: the
// link makes them up so that KdTarget's ACK logic serves all links). ACKs KdTarget sends are
// dropped. A PENDING receive mailbox is taken at once (status cleared): Packet[0] = 0x62 with
// Length < 16 is a break-in, anything else must be a whole KD packet (Length = 16 + ByteCount,
// leader, checksum), else KdTarget gets a BadPacket event and answers RESEND.
#include "hw/SimMachine.h"
#include "transport/PacketLink.h"

#include <memory>
#include <string>

namespace kdcart::hw {

// Where the debugger's blocks live in the simulated RAM: the top of the low run
// (0x1000-0x9F000), which the frame allocator hands out last; below 16 MiB, as the ROM's
// 24-bit 0x1E entry requires.
inline constexpr uint64_t SIM_1394_CONFIG_PA = 0x9C000;
inline constexpr uint64_t SIM_1394_SEND_PA = 0x9D000;
inline constexpr uint64_t SIM_1394_RECEIVE_PA = 0x9E000;

struct Sim1394Options {
    std::string socket_path;
    uint32_t channel = 1;
    uint32_t max_payload = 2048; // S400
    // Faults for tests (kdsim --1394-fault):
    uint32_t reset_every = 0;   // every Nth transaction meets a bus reset (RCODE_GENERATION)
    bool stuck_mailbox = false; // the target never takes packets from its receive mailbox
    bool plain_rom = false;     // the config ROM has no debug entries
};

// "reset-every=N", "stuck-mailbox", "plain-rom", comma-separated. False (with `error` set) on
// anything else.
bool parse_1394_faults(const std::string& spec, Sim1394Options& out, std::string& error);

// Listens on options.socket_path and sets up the debug block in `machine`'s memory (again on
// restart(), after a reboot).
[[nodiscard]] Result<std::unique_ptr<transport::PacketLink>>
make_sim_1394_target_link(SimMachine& machine, const Sim1394Options& options);

// The config ROM kdsim's target node shows (quadlets, host order); `plain` leaves out the
// debug entries.
std::vector<uint32_t> sim_1394_config_rom(bool plain);

} // namespace kdcart::hw
