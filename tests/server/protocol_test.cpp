// The socket protocol's encoding (drivers/socket/protocol.h) and device addresses: round trips, and a
// malformed payload is an error naming the message and the field, never a read past its end.
#include "protocol.h"

#include <gtest/gtest.h>

#include "net.h"

namespace tcemu {
namespace {

std::span<const uint8_t> payload(const std::vector<uint8_t>& frame) {
  return std::span(frame).subspan(proto::kHeaderBytes);
}

TEST(Protocol, FramesAreLittleEndianWithTheirLengthAndType) {
  const std::vector<uint8_t> f = proto::Writer(proto::Msg::kMmioWrite).u32(0x44).u32(0x01020304).finish();
  EXPECT_EQ(f, (std::vector<uint8_t>{8, 0, 0, 0, 3, 0, 0, 0, 0x44, 0, 0, 0, 4, 3, 2, 1}));
  const proto::Header h = proto::decode_header(std::span<const uint8_t, proto::kHeaderBytes>(f.data(), 8));
  EXPECT_EQ(h.length, 8u);
  EXPECT_EQ(h.type, uint16_t(proto::Msg::kMmioWrite));
  EXPECT_STREQ(proto::msg_name(h.type), "MmioWrite");
  EXPECT_EQ(proto::msg_name(0x7777), nullptr);
}

TEST(Protocol, HelloAndReplyRoundTrip) {
  proto::Hello h;
  h.flags = proto::kHelloWantShm;
  h.config = "tc1-16";
  h.tensor_engine = uint8_t(TensorEngineKind::kLockstep);
  h.wave_path = "/tmp/w.fst";
  h.wave_from = 5, h.wave_to = 900;
  h.lockstep_inject_column = 3;
  h.client = "test";
  EXPECT_EQ(proto::decode_hello(payload(proto::encode(h))), h);
  proto::HelloReply r;
  r.context = 7, r.device_pid = 1234, r.shm_bytes = proto::kShmBytes, r.config = "trn1", r.tensor_engine = 1;
  EXPECT_EQ(proto::decode_hello_reply(payload(proto::encode(r))), r);
}

TEST(Protocol, VersionAndMagicMismatchesNameWhatEachSideSpeaks) {
  proto::Hello h;
  h.version = 2;
  try {
    proto::decode_hello(payload(proto::encode(h)));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDevice);
    EXPECT_STREQ(e.what(), "protocol version mismatch: the client speaks version 2, this server speaks version 1");
  }
  proto::HelloReply r;
  r.version = 3;
  try {
    proto::decode_hello_reply(payload(proto::encode(r)));
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "protocol version mismatch: the server speaks version 3, this client speaks version 1");
  }
  h = {};
  h.magic = 0x20544547;  // "GET "
  EXPECT_THROW(proto::decode_hello(payload(proto::encode(h))), Error);
}

TEST(Protocol, TruncatedOrPaddedPayloadsAreFormatErrors) {
  const std::vector<uint8_t> f = proto::encode(proto::Hello{});
  for (size_t n = 0; n < f.size() - proto::kHeaderBytes; ++n) {
    try {
      proto::decode_hello(payload(f).first(n));
      FAIL() << n;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kFormat) << n << ": " << e.what();
    }
  }
  std::vector<uint8_t> longer = f;
  longer.push_back(0);
  try {
    proto::decode_hello(payload(longer));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("1 bytes after the last field"), std::string::npos) << e.what();
  }
  // A string's length is checked before its bytes are taken.
  std::vector<uint8_t> p = proto::Writer(proto::Msg::kInjectFaults).u32(0xFFFFFFF0).finish();
  proto::Reader r(payload(p), "InjectFaults");
  try {
    r.str("spec");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("spec is 4294967280 bytes long"), std::string::npos) << e.what();
  }
  proto::Hello bad_engine;
  bad_engine.tensor_engine = 7;
  EXPECT_THROW(proto::decode_hello(payload(proto::encode(bad_engine))), Error);
}

TEST(Protocol, ErrorsCarryTheirCodeAndText) {
  const Error e = proto::decode_error(payload(proto::encode_error(ErrorCode::kCapacity, "HBM is full")));
  EXPECT_EQ(e.code(), ErrorCode::kCapacity);
  EXPECT_STREQ(e.what(), "HBM is full");
  const Error u = proto::decode_error(payload(proto::Writer(proto::Msg::kError).u32(99).str("x").finish()));
  EXPECT_EQ(u.code(), ErrorCode::kDevice);
  EXPECT_STREQ(u.what(), "the server sent an unknown error code 99: x");
}

TEST(Protocol, DeviceAddresses) {
  net::Address a = net::parse_address("unix:/tmp/x.sock");
  EXPECT_EQ(a.kind, net::Address::Kind::kUnix);
  EXPECT_EQ(a.path, "/tmp/x.sock");
  a = net::parse_address("tcp:127.0.0.1:7070");
  EXPECT_EQ(a.kind, net::Address::Kind::kTcp);
  EXPECT_EQ(a.host, "127.0.0.1");
  EXPECT_EQ(a.port, 7070);
  EXPECT_EQ(a.str(), "tcp:127.0.0.1:7070");
  a = net::parse_address("tcp:[::1]:80");
  EXPECT_EQ(a.host, "::1");
  EXPECT_EQ(a.str(), "tcp:[::1]:80");
  for (const char* bad : {"unix:", "tcp:host", "tcp::80", "tcp:h:99999", "tcp:h:x", "http://x", "emu"}) {
    try {
      net::parse_address(bad);
      FAIL() << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace tcemu
