// Text assembly of models (docs/model-format.md, "Text assembly"): to_assembly then from_assembly gives a
// model that serializes to the same bytes, for kernels, for random instructions of every opcode with every
// field random, and for constant tensors; malformed text fails naming source:line:column.
#include "tcemu/assembly.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>

#include "tcemu/config.h"
#include "model_fixtures.h"
#include "tcemu/error.h"
#include "tcemu/isa.h"
#include "tcemu/kb/gemm.h"
#include "tcemu/kb/linear.h"
#include "tcemu/model.h"

namespace tcemu {
namespace {

using isa::Instr;
using isa::Opcode;

uint64_t mask_of(int width) { return width >= 64 ? ~uint64_t(0) : (uint64_t(1) << width) - 1; }

// to_assembly -> from_assembly gives the same file bytes, the same model, and the same text again.
void expect_round_trip(const model::Model& m) {
  const std::string text = model::to_assembly(m);
  model::Model back;
  try {
    back = model::from_assembly(text, "roundtrip.s");
  } catch (const Error& e) {
    FAIL() << e.what();
  }
  EXPECT_EQ(model::serialize(back), model::serialize(m));
  EXPECT_TRUE(back == m);
  EXPECT_EQ(model::to_assembly(back), text);
}

// The model as a file would give it (fields no opcode owns are as the decoder leaves them).
model::Model through_file(const model::Model& m) { return model::parse(model::serialize(m), "m.tcm"); }

TEST(Assembly, GemmAndLinearKernelsRoundTrip) {
  for (const char* config : {"trn1", "tc1-16"}) {
    SCOPED_TRACE(config);
    const DeviceConfig& cfg = find_config(config);
    for (const model::Model& m : {kb::build_gemm(cfg, 64, 96, 80), kb::build_gemm(cfg, 256, 192, 300),
                                  kb::build_linear(cfg, 48, 40, 36), kb::build_linear(cfg, 256, 192, 300)}) {
      SCOPED_TRACE(m.name);
      ASSERT_GT(m.instruction_count(), 0u);
      expect_round_trip(m);
      expect_round_trip(through_file(m));
    }
  }
}

// Every field of every opcode (its own and the synchronisation fields) random in its width.
TEST(Assembly, RandomInstructionsOfEveryOpcodeRoundTrip) {
  std::mt19937_64 rng(20240611);
  model::Model m;
  m.name = "random";
  m.config_name = "tc1-16";
  m.array_rows = m.array_cols = 16;
  m.hbm_window_bytes = 4096;
  std::map<int, size_t> stream_of;
  auto add = [&](int engine, const Instr& in) {
    auto [it, fresh] = stream_of.try_emplace(engine, m.streams.size());
    if (fresh) m.streams.push_back({engine, {}});
    m.streams[it->second].instrs.push_back(in);
  };
  size_t count = 0;
  for (const isa::OpcodeInfo& op : isa::opcodes()) {
    std::vector<int> engines;
    for (int e = 0; e < isa::kMaxEngines; ++e)  // the engines that exist: 0..2 and the DMA queues
      if ((e <= isa::kEngineScalar || e >= isa::kEngineDma0) && isa::engine_accepts(e, op.opcode)) engines.push_back(e);
    ASSERT_FALSE(engines.empty()) << op.mnemonic;
    for (int i = 0; i < 400; ++i) {
      Instr in;
      in.opcode = op.opcode;
      for (const isa::FieldInfo& f : isa::fields()) {
        if (f.owner != op.opcode && f.owner != Opcode::Invalid) continue;
        uint64_t v = rng() & mask_of(f.width);
        if (i % 4 == 1) v &= 0xF;  // small values too: named codes, known spaces and dtypes, zero fields
        if (i % 8 == 2) v = 0;     // disabled waits and signals, default dma fields
        in.*f.member = v;
      }
      add(engines[rng() % engines.size()], in);
      ++count;
    }
  }
  // Immediates that must come back bit-exactly: NaNs with payloads and signs, -0, infinities, subnormals.
  for (uint32_t bits : {0x7FC00000u, 0xFFC00001u, 0x7F800001u, 0x7FBFFFFFu, 0x80000000u, 0x7F800000u, 0xFF800000u,
                        0x00000001u, 0x807FFFFFu, 0x3DCCCCCDu, 0x7F7FFFFFu}) {
    Instr ts;
    ts.opcode = Opcode::TensorScalar;
    ts.imm0 = bits, ts.imm1 = bits ^ 0x80000000u;
    add(isa::kEngineVector, ts);
    Instr act;
    act.opcode = Opcode::Activation;
    act.scale_imm = bits;
    add(isa::kEngineScalar, act);
    count += 2;
  }
  ASSERT_EQ(m.instruction_count(), count);
  expect_round_trip(m);
  expect_round_trip(through_file(m));
}

TEST(Assembly, DisassemblyShowsEveryEncodedBit) {
  Instr nop;
  nop.opcode = Opcode::Nop;
  nop.wait_sem = 3, nop.signal_set = 1, nop.signal_value = 9;  // encoded although wait and signal are off
  EXPECT_EQ(isa::disassemble(nop), "nop wait_sem=3 signal_set=1 signal_value=9");
  Instr dma;
  dma.opcode = Opcode::DmaCopy;
  dma.src = isa::make_addr(isa::Space::kSbuf, 0x40);
  dma.dst = (uint64_t(13) << isa::kSpaceShift) | 0x80;
  EXPECT_NE(isa::disassemble(dma).find("src=sbuf:0x40 dst=space13:0x80"), std::string::npos) << isa::disassemble(dma);
  Instr act;
  act.opcode = Opcode::Activation;
  act.scale_imm = 0xFFC00123u;
  EXPECT_NE(isa::disassemble(act).find("scale_imm=nan:0xffc00123"), std::string::npos) << isa::disassemble(act);
  act.scale_imm = 0x3F000000u;
  EXPECT_NE(isa::disassemble(act).find("scale_imm=0.5"), std::string::npos) << isa::disassemble(act);
}

model::Tensor tensor(std::string name, model::DType dt, model::TensorKind kind, std::vector<int64_t> shape,
                     uint64_t offset, uint8_t seed = 0) {
  return tcemu::test::make_tensor(std::move(name), dt, kind, std::move(shape), offset, seed, 37);
}

TEST(Assembly, ConstantTensorsWithDataAndAnyNamesRoundTrip) {
  using model::DType;
  using model::TensorKind;
  model::Model m;
  m.name = "";  // may be empty
  m.config_name = "tc1-8";
  m.array_rows = 8, m.array_cols = 4;
  m.hbm_window_bytes = 0x10000;
  m.tensors = {tensor("x", DType::kBf16, TensorKind::kInput, {8, 8}, 0),
               tensor("w \"quoted\" \\ # not a comment", DType::kF32, TensorKind::kConst, {3, 5}, 0x100, 1),
               tensor("scalar", DType::kBf16, TensorKind::kConst, {}, 0x200, 2),
               tensor("big", DType::kF32, TensorKind::kConst, {2, 3, 41}, 0x400, 3),
               tensor("tab\tnewline\nbell\x07 utf8 \xc3\xa9", DType::kF32, TensorKind::kScratch, {1, 1, 1, 1, 1, 1, 1, 2},
                      0x1000),
               tensor("y", DType::kF32, TensorKind::kOutput, {8}, 0x2000)};
  Instr n;
  n.opcode = Opcode::Notify;
  n.tag = 0xDEADBEEF;
  m.streams = {{isa::kEngineDma0 + 15, {n}}, {isa::kEngineScalar, {}}, {isa::kEngineTensor, {n, n}}};
  const std::string text = model::to_assembly(m);
  EXPECT_NE(text.find(".tensor \"w \\\"quoted\\\" \\\\ # not a comment\" f32 const shape=[3,5] hbm_offset=0x100 "
                      "bytes=60\n  .data 01264b70 95badf04 "),
            std::string::npos)
      << text;
  EXPECT_NE(text.find(".tensor \"scalar\" bf16 const shape=[] hbm_offset=0x200 bytes=2\n  .data 0227\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("\"tab\\x09newline\\x0abell\\x07 utf8 \xc3\xa9\""), std::string::npos) << text;
  EXPECT_NE(text.find(".stream dma15"), std::string::npos) << text;
  expect_round_trip(m);
  expect_round_trip(through_file(m));
}

// The example of docs/model-format.md, "Text assembly", assembles (and round-trips).
TEST(Assembly, TheDocumentedExampleAssembles) {
  std::ifstream f(std::string(TCEMU_SOURCE_DIR) + "/docs/model-format.md");
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string doc = ss.str();
  const size_t section = doc.find("\n## Text assembly\n");
  ASSERT_NE(section, std::string::npos) << "docs/model-format.md has no 'Text assembly' section";
  const size_t open = doc.find("\n```\n", section), close = doc.find("\n```\n", open + 1);
  ASSERT_NE(close, std::string::npos);
  const std::string example = doc.substr(open + 5, close + 1 - (open + 5));
  model::Model m;
  try {
    m = model::from_assembly(example, "model-format.md example");
  } catch (const Error& e) {
    FAIL() << e.what() << "\nin:\n" << example;
  }
  EXPECT_EQ(m.name, "relu_bias_4x8");
  ASSERT_EQ(m.tensors.size(), 3u);
  EXPECT_EQ(m.tensors[2].data, (std::vector<uint8_t>{0, 0, 0x80, 0x3f, 0, 0, 0, 0xbf, 0, 0, 0, 0, 0, 0, 0x20, 0x41}));
  EXPECT_EQ(m.instruction_count(), 4u);
  expect_round_trip(m);
}

// ---- errors ---------------------------------------------------------------------------------------------

// Line numbers: 1 comment, 2-5 header, 6-8 tensors, 9-10 tensor stream, 11-12 dma0 stream.
const std::string kGood = R"(# a hand-written model
.model "hand"
.config "tc1-16"
.array rows=16 cols=16
.hbm_window_bytes 0x1000
.tensor "a" f32 input shape=[4] hbm_offset=0x0 bytes=16
.tensor "w" f32 const shape=[2] hbm_offset=0x40 bytes=8
  .data 0000803f 00000040   # 1.0f, 2.0f
.stream tensor
  matmul k=16 m=16 n=64 st_off=0x100 signal=s0+=1  # the other fields are 0
.stream dma0
  dma_copy src=hbm:0x0 dst=sbuf:0x0 bytes=16 d1_count=1 d2_count=1 wait=s0>=1
)";

std::string edit(std::string text, const std::string& from, const std::string& to) {
  const size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

// The message of the Error(kFormat) that `text` gives.
std::string format_error(const std::string& text) {
  try {
    model::from_assembly(text, "hand.s");
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kFormat) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no error for:\n" << text;
  return "";
}

TEST(AssemblyErrors, TheGoodTextAssembles) {
  const model::Model m = model::from_assembly(kGood, "hand.s");
  EXPECT_EQ(m.name, "hand");
  ASSERT_EQ(m.tensors.size(), 2u);
  EXPECT_EQ(m.tensors[1].data, (std::vector<uint8_t>{0, 0, 0x80, 0x3f, 0, 0, 0, 0x40}));
  ASSERT_EQ(m.streams.size(), 2u);
  EXPECT_EQ(m.streams[0].instrs[0].st_off, 0x100u);
  EXPECT_EQ(m.streams[0].instrs[0].signal_en, 1u);
  EXPECT_EQ(m.streams[1].instrs[0].d3_count, 1u);  // left out: the default
  expect_round_trip(m);
}

TEST(AssemblyErrors, BadMnemonicNamesLineColumnAndToken) {
  const std::string e = format_error(edit(kGood, "  matmul k=16", "  matmull k=16"));
  EXPECT_EQ(e.rfind("hand.s:10:3: unknown mnemonic: expected an opcode (nop, notify, dma_copy, matmul", 0), 0u) << e;
  EXPECT_NE(e.find("found 'matmull'"), std::string::npos) << e;
}

TEST(AssemblyErrors, BadFieldValuesNameTheField) {
  std::string e = format_error(edit(kGood, "k=16", "k=70000"));
  EXPECT_EQ(e, "hand.s:10:12: field 'k' does not fit in 16 bits: expected 0..65535, found '70000'") << e;
  e = format_error(edit(kGood, "k=16", "k=sixteen"));
  EXPECT_EQ(e, "hand.s:10:12: field 'k': expected an unsigned integer (decimal or 0x hex), found 'sixteen'") << e;
  e = format_error(edit(kGood, "k=16", "k=1 k=2"));
  EXPECT_NE(e.find("hand.s:10:14: field 'k' given twice"), std::string::npos) << e;
  e = format_error(edit(kGood, "k=16", "tag=1"));
  EXPECT_NE(e.find("hand.s:10:10: matmul has no field 'tag': expected one of wait=, signal=,"), std::string::npos) << e;
  e = format_error(edit(kGood, "src=hbm:0x0", "src=dram:0x0"));
  EXPECT_NE(e.find("hand.s:12:16: field 'src': expected a device address"), std::string::npos) << e;
  EXPECT_NE(e.find("found 'dram:0x0'"), std::string::npos) << e;
  e = format_error(edit(kGood, "wait=s0>=1", "wait=s0>1"));
  EXPECT_NE(e.find("hand.s:12:75: wait: expected '>=', found '>1'"), std::string::npos) << e;
  e = format_error(edit(kGood, "wait=s0>=1", "wait=s256>=1"));
  EXPECT_NE(e.find("hand.s:12:74: wait: semaphore: expected an integer 0..255, found '256'"), std::string::npos) << e;
  e = format_error(edit(kGood, "  matmul k=16 m=16 n=64 st_off=0x100", "  tensor_copy np=1 out=sbuf[p3+0x40]:f33:strides(1,16)"));
  EXPECT_NE(e.find("hand.s:10:3: engine tensor does not run tensor_copy"), std::string::npos) << e;
  const std::string vec = edit(kGood, ".stream tensor\n  matmul k=16 m=16 n=64 st_off=0x100 signal=s0+=1",
                               ".stream vector\n  tensor_copy np=1 out=sbuf[p3+0x40]:f33:strides(1,16)");
  e = format_error(vec);
  EXPECT_EQ(e, "hand.s:10:38: field 'out': dtype: expected f32, bf16, i32 or dtype0..dtype3, found 'f33'") << e;
  EXPECT_NO_THROW(model::from_assembly(edit(vec, "f33", "f32"), "hand.s")) << "the fixed line assembles";
  const std::string act = edit(kGood, ".stream tensor\n  matmul k=16 m=16 n=64 st_off=0x100 signal=s0+=1",
                               ".stream scalar\n  activation np=1 scale_imm=0.5");
  EXPECT_EQ(model::from_assembly(act, "hand.s").streams[0].instrs[0].scale_imm, 0x3F000000u);
  EXPECT_EQ(model::from_assembly(edit(act, "0.5", "0x1p-1"), "hand.s").streams[0].instrs[0].scale_imm, 0x3F000000u);
  EXPECT_EQ(model::from_assembly(edit(act, "0.5", "-inf"), "hand.s").streams[0].instrs[0].scale_imm, 0xFF800000u);
  EXPECT_EQ(model::from_assembly(edit(act, "0.5", "nan:0xffc00001"), "hand.s").streams[0].instrs[0].scale_imm,
            0xFFC00001u);
  e = format_error(edit(act, "0.5", "0x3f000000"));
  EXPECT_NE(e.find("hand.s:10:29: field 'scale_imm': expected an fp32 value; a hexadecimal float has a p exponent"),
            std::string::npos)
      << e;
  e = format_error(edit(act, "0.5", "1e39"));
  EXPECT_NE(e.find("hand.s:10:29: field 'scale_imm': expected an fp32 value"), std::string::npos) << e;
  e = format_error(edit(act, "0.5", "nan:0x3f800000"));
  EXPECT_NE(e.find("hand.s:10:33: field 'scale_imm': expected the bits of a NaN"), std::string::npos) << e;
  e = format_error(edit(act, "0.5", "0.5 func=cosh"));
  EXPECT_NE(e.find("hand.s:10:38: field 'func': expected one of identity, relu, gelu_tanh"), std::string::npos) << e;
}

TEST(AssemblyErrors, MissingHeaderNamesTheLineItWasExpectedBy) {
  std::string e = format_error(edit(kGood, ".config \"tc1-16\"\n", ""));
  EXPECT_EQ(e, "hand.s:5:1: missing header directive '.config': expected .model, .config, .array and "
               ".hbm_window_bytes before the first .tensor or .stream, found '.tensor'")
      << e;
  e = format_error("# nothing\n.model \"m\"\n");
  EXPECT_EQ(e.rfind("hand.s:3:1: missing header directive '.config'", 0), 0u) << e;
  EXPECT_NE(e.find("found 'end of file'"), std::string::npos) << e;
  e = format_error(edit(kGood, ".stream dma0", ".array rows=1 cols=1\n.stream dma0"));
  EXPECT_EQ(e.rfind("hand.s:11:1: header directive after the first .tensor or .stream", 0), 0u) << e;
  e = format_error(edit(kGood, ".array rows=16 cols=16", ".array rows=16"));
  EXPECT_EQ(e.rfind("hand.s:4:15: .array: missing 'cols='", 0), 0u) << e;
}

TEST(AssemblyErrors, DuplicateTensorNamesBothLines) {
  const std::string e = format_error(edit(kGood, ".tensor \"w\"", ".tensor \"a\""));
  EXPECT_EQ(e, "hand.s:7:9: duplicate tensor name (first defined at line 6): expected a name no other tensor has, "
               "found '\"a\"'")
      << e;
}

TEST(AssemblyErrors, OtherMistakes) {
  std::string e = format_error(edit(kGood, ".stream dma0", ".stream dma16"));
  EXPECT_NE(e.find("hand.s:11:9: .stream: unknown engine: expected tensor, vector, scalar or dma0..dma15"),
            std::string::npos)
      << e;
  e = format_error(edit(kGood, ".stream dma0", ".stream tensor"));
  EXPECT_NE(e.find("hand.s:11:9: duplicate stream (engine tensor first at line 9)"), std::string::npos) << e;
  e = format_error(edit(kGood, ".stream tensor\n", ""));
  EXPECT_NE(e.find("hand.s:9:3: instruction outside a stream"), std::string::npos) << e;
  e = format_error(edit(kGood, ".stream tensor", ".strem tensor"));
  EXPECT_NE(e.find("hand.s:9:1: unknown directive"), std::string::npos) << e;
  e = format_error(edit(kGood, "00000040", "000000"));
  EXPECT_NE(e.find("hand.s:7:1: const tensor 'w': expected 8 bytes of .data (its bytes=), found 7"), std::string::npos)
      << e;
  e = format_error(edit(kGood, "00000040", "0000004"));
  EXPECT_NE(e.find("hand.s:8:24: .data: expected bytes as pairs of hex digits, found '4'"), std::string::npos) << e;
  e = format_error(edit(kGood, "00000040", "00000040 00"));
  EXPECT_NE(e.find("hand.s:8:27: .data of tensor 'w' longer than its bytes=8"), std::string::npos) << e;
  e = format_error(edit(kGood, ".model \"hand\"", ".model \"hand"));
  EXPECT_NE(e.find("hand.s:2:8: unterminated string"), std::string::npos) << e;
  e = format_error(edit(kGood, "f32 input", "f64 input"));
  EXPECT_NE(e.find("hand.s:6:13: .tensor: unknown dtype: expected bf16 or f32, found 'f64'"), std::string::npos) << e;
  e = format_error(edit(kGood, "shape=[4]", "shape=[4,x]"));
  EXPECT_NE(e.find("hand.s:6:32: shape: dimension: expected an integer"), std::string::npos) << e;
  EXPECT_NO_THROW(model::from_assembly(edit(kGood, "  .data", ".data"), "hand.s"));  // indentation is free
}

TEST(AssemblyErrors, ModelRulesAreCheckedByValidate) {
  // Overlapping tensors parse, and model::validate refuses them.
  try {
    model::from_assembly(edit(kGood, "hbm_offset=0x40", "hbm_offset=0x8"), "hand.s");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
    EXPECT_NE(std::string(e.what()).find("tensor[1].hbm_offset"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace tcemu
