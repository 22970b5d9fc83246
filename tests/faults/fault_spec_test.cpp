// The fault spec text (tcemu/faults.h, docs/driver.md "Fault spec"): every kind with its keys and defaults,
// errors that name the source, the line and the problem, and the to_spec round trip.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "tcemu/error.h"
#include "tcemu/faults.h"
#include "tcemu/isa.h"

namespace tcemu {
namespace {

using fi::Fault;
using fi::Kind;

// The message of the Error(code) that parsing `text` throws ("" and a failure if it does not).
std::string parse_error(const std::string& text, ErrorCode code = ErrorCode::kFormat) {
  try {
    fi::parse(text, "plan.txt");
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "'" << text << "' parsed without an error";
  return "";
}

bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

TEST(FaultSpec, EveryKindWithEveryKey) {
  const fi::Plan p = fi::parse(
      "# a comment line\n"
      "seed 42\n"
      "dma_error job=3 transfer=7\n"
      "bit_flip job=2 space=psum bits=2 cycle=1500 addr=psum:0x840   # trailing comment\n"
      "bit_flip space=hbm bits=1 addr=0x100\n"
      "hang job=4 engine=dma5 instr=9\n"
      "\n"
      "irq_drop job=5\n"
      "irq_delay job=6 cycles=300\n"
      "irq_spurious job=7 cycle=11\n"
      "doorbell_ignore count=3\n"
      "completion_corrupt job=8\n");
  EXPECT_EQ(p.seed, 42u);
  ASSERT_EQ(p.faults.size(), 9u);
  Fault f;
  f.kind = Kind::kDmaError, f.job = 3, f.transfer = 7;
  EXPECT_EQ(p.faults[0], f);
  f = {};
  f.kind = Kind::kBitFlip, f.job = 2, f.space = int(isa::Space::kPsum), f.bits = 2, f.cycle = 1500, f.addr = 0x840;
  EXPECT_EQ(p.faults[1], f);
  f = {};
  f.kind = Kind::kBitFlip, f.space = int(isa::Space::kHbm), f.bits = 1, f.addr = 0x100;
  EXPECT_EQ(p.faults[2], f);
  f = {};
  f.kind = Kind::kHang, f.job = 4, f.engine = isa::kEngineDma0 + 5, f.instr = 9;
  EXPECT_EQ(p.faults[3], f);
  f = {};
  f.kind = Kind::kIrqDrop, f.job = 5;
  EXPECT_EQ(p.faults[4], f);
  f = {};
  f.kind = Kind::kIrqDelay, f.job = 6, f.delay = 300;
  EXPECT_EQ(p.faults[5], f);
  f = {};
  f.kind = Kind::kIrqSpurious, f.job = 7, f.cycle = 11;
  EXPECT_EQ(p.faults[6], f);
  f = {};
  f.kind = Kind::kDoorbellIgnore, f.count = 3;
  EXPECT_EQ(p.faults[7], f);
  f = {};
  f.kind = Kind::kCompletionCorrupt, f.job = 8;
  EXPECT_EQ(p.faults[8], f);
}

TEST(FaultSpec, DefaultsAreJobOneTransferOneCycleZeroInstrZeroCountOne) {
  const fi::Plan p = fi::parse(
      "dma_error\nbit_flip space=sbuf bits=1\nhang engine=vector\nirq_spurious\n"
      "doorbell_ignore\nirq_drop\ncompletion_corrupt\n");
  EXPECT_EQ(p.seed, 1u);
  ASSERT_EQ(p.faults.size(), 7u);
  for (const Fault& f : p.faults) EXPECT_EQ(f.job, 1u) << fi::describe(f);
  EXPECT_EQ(p.faults[0].transfer, 1u);
  EXPECT_EQ(p.faults[1].space, int(isa::Space::kSbuf));
  EXPECT_EQ(p.faults[1].cycle, 0u);
  EXPECT_FALSE(p.faults[1].addr.has_value());
  EXPECT_EQ(p.faults[2].engine, isa::kEngineVector);
  EXPECT_EQ(p.faults[2].instr, 0u);
  EXPECT_EQ(p.faults[3].cycle, 0u);
  EXPECT_EQ(p.faults[4].count, 1u);
  EXPECT_TRUE(fi::parse("# nothing but comments\n\n   \n").empty());
}

TEST(FaultSpec, ErrorsNameTheSourceTheLineAndTheProblem) {
  std::string m = parse_error("irq_drop\n\ndma_eror job=2\n");
  EXPECT_TRUE(has(m, "plan.txt:3")) << m;
  EXPECT_TRUE(has(m, "unknown fault 'dma_eror'")) << m;
  EXPECT_TRUE(has(m, "dma_error")) << m;  // the known kinds are listed

  m = parse_error("dma_error queue=2");
  EXPECT_TRUE(has(m, "plan.txt:1") && has(m, "dma_error takes no 'queue'") && has(m, "transfer")) << m;
  m = parse_error("irq_delay job=2");
  EXPECT_TRUE(has(m, "irq_delay needs cycles=D")) << m;
  m = parse_error("bit_flip bits=1");
  EXPECT_TRUE(has(m, "bit_flip needs space=")) << m;
  m = parse_error("bit_flip space=sbuf");
  EXPECT_TRUE(has(m, "bit_flip needs bits=1|2")) << m;
  m = parse_error("bit_flip space=sbuf bits=3");
  EXPECT_TRUE(has(m, "bits=3 is out of range [1, 2]")) << m;
  m = parse_error("bit_flip space=dram bits=1");
  EXPECT_TRUE(has(m, "space='dram' is not sbuf, psum or hbm")) << m;
  m = parse_error("bit_flip space=sbuf bits=1 addr=psum:0x40");
  EXPECT_TRUE(has(m, "addr=psum:0x40 is not in space sbuf")) << m;
  m = parse_error("hang instr=3");
  EXPECT_TRUE(has(m, "hang needs engine=")) << m;
  m = parse_error("hang engine=gpu");
  EXPECT_TRUE(has(m, "engine='gpu' is not an engine")) << m;
  m = parse_error("dma_error job=0");
  EXPECT_TRUE(has(m, "job=0 is out of range")) << m;
  m = parse_error("dma_error job=-1");
  EXPECT_TRUE(has(m, "job='-1' is not a non-negative integer")) << m;
  m = parse_error("dma_error job=2x");
  EXPECT_TRUE(has(m, "job='2x' is not a non-negative integer")) << m;
  m = parse_error("dma_error job=2 job=3");
  EXPECT_TRUE(has(m, "'job' is given twice")) << m;
  m = parse_error("dma_error transfer");
  EXPECT_TRUE(has(m, "'transfer' is not KEY=VALUE")) << m;
  m = parse_error("doorbell_ignore job=2");
  EXPECT_TRUE(has(m, "doorbell_ignore takes no 'job'")) << m;
  m = parse_error("seed");
  EXPECT_TRUE(has(m, "plan.txt:1") && has(m, "expected 'seed N'")) << m;
  m = parse_error("seed x");
  EXPECT_TRUE(has(m, "seed='x' is not a non-negative integer")) << m;
}

TEST(FaultSpec, AddParsesOneCommandLineFaultNamingIt) {
  fi::Plan p;
  fi::add(p, "dma_error transfer=3");
  fi::add(p, "irq_drop job=2  # why not");
  ASSERT_EQ(p.faults.size(), 2u);
  EXPECT_EQ(p.faults[0].kind, Kind::kDmaError);
  EXPECT_EQ(p.faults[0].transfer, 3u);
  EXPECT_EQ(p.faults[1].job, 2u);
  try {
    fi::add(p, "hang engine=tensor instr=x");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kFormat);
    EXPECT_TRUE(has(e.what(), "--fault 'hang engine=tensor instr=x'") && has(e.what(), "instr='x'")) << e.what();
  }
  try {
    fi::add(p, "   ");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_TRUE(has(e.what(), "--fault: empty fault")) << e.what();
  }
  EXPECT_EQ(p.faults.size(), 2u);
}

TEST(FaultSpec, ToSpecRoundTripsEveryKind) {
  fi::Plan p;
  p.seed = 0xDEADBEEF12345ull;
  auto add = [&](Fault f) { p.faults.push_back(f); };
  Fault f;
  f.kind = Kind::kDmaError, f.job = 9, f.transfer = 4;
  add(f);
  f = {};
  f.kind = Kind::kBitFlip, f.job = 2, f.space = int(isa::Space::kSbuf), f.bits = 2, f.cycle = 77, f.addr = 0x1238;
  add(f);
  f = {};
  f.kind = Kind::kBitFlip, f.space = int(isa::Space::kHbm), f.bits = 1, f.cycle = 5;  // no address: seeded
  add(f);
  f = {};
  f.kind = Kind::kHang, f.job = 3, f.engine = isa::kEngineScalar, f.instr = 12;
  add(f);
  f = {};
  f.kind = Kind::kIrqDrop, f.job = 4;
  add(f);
  f = {};
  f.kind = Kind::kIrqDelay, f.job = 5, f.delay = 123456;
  add(f);
  f = {};
  f.kind = Kind::kIrqSpurious, f.job = 6, f.cycle = 99;
  add(f);
  f = {};
  f.kind = Kind::kDoorbellIgnore, f.count = 5;
  add(f);
  f = {};
  f.kind = Kind::kCompletionCorrupt, f.job = 7;
  add(f);
  const std::string spec = fi::to_spec(p);
  EXPECT_EQ(fi::parse(spec), p) << spec;
  EXPECT_TRUE(has(spec, "bit_flip job=2 space=sbuf bits=2 cycle=77 addr=sbuf:0x1238\n")) << spec;
  EXPECT_TRUE(has(spec, "hang job=3 engine=scalar instr=12\n")) << spec;
  EXPECT_TRUE(has(spec, "doorbell_ignore count=5\n")) << spec;
  EXPECT_EQ(fi::describe(p.faults[0]), "dma_error job=9 transfer=4");
}

TEST(FaultSpec, LoadReadsAFileAndNamesItInErrors) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("tcemu_fault_spec_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string good = (dir / "good.faults").string(), bad = (dir / "bad.faults").string();
  std::ofstream(good) << "seed 3\nirq_drop job=2\n";
  std::ofstream(bad) << "irq_drop\nirq_delay\n";
  const fi::Plan p = fi::load(good);
  EXPECT_EQ(p.seed, 3u);
  ASSERT_EQ(p.faults.size(), 1u);
  EXPECT_EQ(p.faults[0].kind, Kind::kIrqDrop);
  try {
    fi::load(bad);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kFormat);
    EXPECT_TRUE(has(e.what(), bad + ":2") && has(e.what(), "irq_delay needs cycles=D")) << e.what();
  }
  const std::string missing = (dir / "missing.faults").string();
  try {
    fi::load(missing);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kIo);
    EXPECT_TRUE(has(e.what(), missing)) << e.what();
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace tcemu
