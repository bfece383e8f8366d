#pragma once
// Parses WinDbg-style -k connection strings:
//   com:port=/dev/ttyS0[,baud=115200]     real serial port or pty
//   com:pipe,port=/path/to/socket          AF_UNIX stream socket (QEMU/VirtualBox "pipe")
//   com:tcp,port=HOST:PORT                 TCP byte stream (VM serial over TCP)
// and as WinDbg writes them (keys in any case; resets=0 and reconnect accepted):
//   com:port=COM1,baud=115200              COMn is /dev/ttyS(n-1)
//   com:ipport=5003,port=HOST              serial over TCP
//   com:pipe,port=PATH,resets=0,reconnect  PATH of the VM's AF_UNIX socket
//   net:port=P,key=K[,target=IP][,hostip=IP]
//   1394:channel=N[,device=/dev/fwX]       IEEE 1394 (firewire-cdev), channel 0-62
//   1394:channel=N,bus=sim:PATH            the simulated 1394 bus kdsim serves at PATH
//   (1394 also takes nodma: physical memory in KD packets instead of by DMA)
#include "transport/Error.h"

#include <string>

namespace kdcart::cli {

struct ConnectionSpec {
    enum class Kind { Serial, Pipe, Tcp, Net, Ieee1394 } kind = Kind::Serial;
    std::string port;      // device path, socket path or HOST:PORT
    unsigned baud = 115200;
    std::string key;       // KDNET
    std::string host_ip;   // KDNET
    std::string target;    // KDNET target=IP (accepted; the key authenticates the target)
    uint32_t channel = 0;  // 1394
    std::string device;    // 1394: one /dev/fwN instead of all of them
    std::string sim_bus;   // 1394: socket path of the simulated bus (bus=sim:PATH)
    bool dma = true;       // 1394: physical memory by DMA (nodma: in KD packets, as on serial)
};

[[nodiscard]] Result<ConnectionSpec> parse_connection_string(const std::string& text);

} // namespace kdcart::cli
