// -k connection strings: kdcart's own spellings and WinDbg's, so notes written for WinDbg work.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "cli/ConnectionString.h"

#include <doctest/doctest.h>

using kdcart::cli::ConnectionSpec;
using kdcart::cli::parse_connection_string;
using Kind = ConnectionSpec::Kind;

TEST_CASE("kdcart's spellings") {
    auto s = parse_connection_string("com:port=/dev/ttyUSB0,baud=57600");
    REQUIRE(s);
    CHECK(s->kind == Kind::Serial);
    CHECK(s->port == "/dev/ttyUSB0");
    CHECK(s->baud == 57600);
    s = parse_connection_string("com:pipe,port=/tmp/kd.sock");
    REQUIRE(s);
    CHECK(s->kind == Kind::Pipe);
    CHECK(s->port == "/tmp/kd.sock");
    s = parse_connection_string("com:tcp,port=vmhost:5003");
    REQUIRE(s);
    CHECK(s->kind == Kind::Tcp);
    CHECK(s->port == "vmhost:5003");
    s = parse_connection_string("net:port=50000,key=1.2.3.4,hostip=10.0.0.1");
    REQUIRE(s);
    CHECK(s->kind == Kind::Net);
    CHECK(s->port == "50000");
    CHECK(s->key == "1.2.3.4");
    CHECK(s->host_ip == "10.0.0.1");
}

TEST_CASE("WinDbg's spellings") {
    // COMn is the n-th built-in UART; keys and the transport in any case.
    auto s = parse_connection_string("com:port=COM1,baud=115200");
    REQUIRE(s);
    CHECK(s->kind == Kind::Serial);
    CHECK(s->port == "/dev/ttyS0");
    s = parse_connection_string("COM:Port=com3,Baud=9600");
    REQUIRE(s);
    CHECK(s->port == "/dev/ttyS2");
    CHECK(s->baud == 9600);
    s = parse_connection_string("com:port=\\\\.\\COM10,baud=115200");
    REQUIRE(s);
    CHECK(s->port == "/dev/ttyS9");
    s = parse_connection_string("com:port=compact,baud=115200"); // not a COM name: as given
    REQUIRE(s);
    CHECK(s->port == "compact");
    // Serial over TCP: ipport is the TCP port, port the host.
    s = parse_connection_string("com:ipport=5003,port=192.168.1.20");
    REQUIRE(s);
    CHECK(s->kind == Kind::Tcp);
    CHECK(s->port == "192.168.1.20:5003");
    s = parse_connection_string("com:port=vmhost,ipport=5003");
    REQUIRE(s);
    CHECK(s->port == "vmhost:5003");
    s = parse_connection_string("com:ipport=5003,port=::1");
    REQUIRE(s);
    CHECK(s->port == "[::1]:5003");
    CHECK_FALSE(parse_connection_string("com:ipport=50x3,port=h"));
    // A VM's pipe port, with WinDbg's options.
    s = parse_connection_string("com:pipe,port=/run/vm/kd.sock,resets=0,reconnect");
    REQUIRE(s);
    CHECK(s->kind == Kind::Pipe);
    CHECK(s->port == "/run/vm/kd.sock");
    auto win = parse_connection_string("com:pipe,port=\\\\.\\pipe\\kd,resets=0");
    REQUIRE_FALSE(win);
    CHECK(win.error().message.find("Windows pipe name") != std::string::npos);
    // KDNET with the target's address.
    s = parse_connection_string("net:port=50000,key=a.b.c.d,target=192.168.1.30");
    REQUIRE(s);
    CHECK(s->kind == Kind::Net);
    CHECK(s->key == "a.b.c.d");
    CHECK(s->target == "192.168.1.30");
}

TEST_CASE("errors") {
    CHECK_FALSE(parse_connection_string("port=COM1"));
    CHECK_FALSE(parse_connection_string("usb:targetname=x"));
    CHECK_FALSE(parse_connection_string("com:baud=115200"));
    CHECK_FALSE(parse_connection_string("com:port=COM1,baud=fast"));
    CHECK_FALSE(parse_connection_string("com:port=COM1,parity=odd"));
    CHECK_FALSE(parse_connection_string("net:port=50000,key=k,ipport=1"));
}
