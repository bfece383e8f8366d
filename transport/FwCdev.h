#pragma once
// The real IEEE 1394 bus: Linux firewire-core's character devices (/dev/fw*, firewire-cdev
// ioctls from <linux/firewire-cdev.h>; kd-protocol.md §5.3).
//
// Each /dev/fwN is one node of the bus (the local controller too). FW_CDEV_IOC_GET_INFO gives
// the node's config ROM and the bus generation (its bus_reset block); FW_CDEV_IOC_SEND_REQUEST
// starts a transaction whose completion comes back as an FW_CDEV_EVENT_RESPONSE read from the
// fd, matched by its closure. One transaction is in flight at a time: the next one is only
// sent once the previous response arrived (or, if it never did, once its cancellation came
// back or the wait for it timed out).
//
// The system calls go through CdevSys so that tests can play the kernel (their request and
// response handling is the thing to test; real hardware was not available).
#include "transport/FwBus.h"

#include <sys/types.h>

namespace kdcart::transport {

class CdevSys {
  public:
    virtual ~CdevSys() = default;
    // The /dev/fw* nodes that exist, in numeric order ("/dev/fw0", "/dev/fw1", ...).
    virtual std::vector<std::string> list_devices() = 0;
    // open(path, O_RDWR | O_CLOEXEC): an fd, or -errno.
    virtual int open(const std::string& path) = 0;
    virtual void close(int fd) = 0;
    // ioctl(fd, request, arg): the ioctl's return value (>= 0), or -errno.
    virtual int ioctl(int fd, unsigned long request, void* arg) = 0;
    // Waits for the fd to be readable: 1 readable, 0 timed out, -errno.
    virtual int poll_in(int fd, int timeout_ms) = 0;
    // read(fd, buf, len): one event per call; bytes, or -errno.
    virtual ssize_t read(int fd, void* buf, size_t len) = 0;
};

// The system's own calls.
CdevSys& real_cdev_sys();

// Opens one /dev/fwN node. Errc::Unsupported with the udev advice for EACCES/EPERM.
[[nodiscard]] Result<std::unique_ptr<FwNode>> open_cdev_node(const std::string& path,
                                                             CdevSys& sys = real_cdev_sys());

// All /dev/fw* nodes, or just `device` when it is not empty. Errors: no /dev/fw* at all (no
// controller driven by firewire-ohci), `device` missing, or no node could be opened because
// of permissions (the message names the nodes and the udev rule to add).
FwEnumerator make_cdev_enumerator(std::string device, CdevSys& sys = real_cdev_sys());

// What to do when a /dev/fw* node cannot be opened for lack of permission.
std::string cdev_permission_advice(const std::string& path);

} // namespace kdcart::transport
