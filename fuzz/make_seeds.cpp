// Writes the fuzzers' seed corpora and the assembly dictionary from real inputs, so that no binary corpus
// is committed: models built by the kernel library (small shapes on tc1-8; not the transformer block, whose
// smallest model is 47 KB and would slow every execution: the others cover its instructions), hand-made
// models with constants, a scalar and no tensors at all, their text assembly, instructions of every opcode
// (random fields as the assembly test draws them, and those the kernels emit), and .npy files of each
// accepted dtype and version.
//
// Usage: tcemu-fuzz-seeds OUT_DIR   (creates OUT_DIR/{model_parse,isa_decode,assembly,npy_parse} and
//                                    OUT_DIR/assembly.dict)
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "tcemu/assembly.h"
#include "tcemu/config.h"
#include "tcemu/isa.h"
#include "tcemu/kb/attention.h"
#include "tcemu/kb/conv2d.h"
#include "tcemu/kb/elementwise.h"
#include "tcemu/kb/gemm.h"
#include "tcemu/kb/linear.h"
#include "tcemu/kb/norm.h"
#include "tcemu/kb/softmax.h"
#include "tcemu/kb/transpose.h"
#include "tcemu/model.h"
#include "tcemu/npy.h"

namespace {

using namespace tcemu;
namespace fs = std::filesystem;

void write(const fs::path& p, const void* data, size_t n) {
  std::ofstream f(p, std::ios::binary);
  f.write(static_cast<const char*>(data), std::streamsize(n));
  if (!f) throw std::runtime_error("cannot write " + p.string());
}
void write(const fs::path& p, const std::vector<uint8_t>& b) { write(p, b.data(), b.size()); }
void write(const fs::path& p, const std::string& s) { write(p, s.data(), s.size()); }

constexpr uint64_t mask_of(int width) { return width >= 64 ? ~uint64_t(0) : (uint64_t(1) << width) - 1; }

model::Tensor tensor(std::string name, model::DType dt, model::TensorKind kind, std::vector<int64_t> shape,
                     uint64_t offset) {
  model::Tensor t;
  t.name = std::move(name);
  t.dtype = dt;
  t.kind = kind;
  t.shape = std::move(shape);
  t.bytes = model::element_count(t.shape) * model::dtype_size(dt);
  t.hbm_offset = offset;
  if (kind == model::TensorKind::kConst)
    for (uint64_t i = 0; i < t.bytes; ++i) t.data.push_back(uint8_t(7 + 13 * i));
  return t;
}

// Models the kernels do not make: constants of odd sizes (padding between them), a rank-0 tensor, every
// kind, names with bytes the assembly escapes, a second DMA queue; and an empty model.
std::vector<std::pair<std::string, model::Model>> hand_models() {
  model::Model m;
  m.name = "hand \"made\"\t\x7f";
  m.config_name = "tc1-8";
  m.array_rows = m.array_cols = 8;
  m.hbm_window_bytes = 4096;
  using model::DType, model::TensorKind;
  m.tensors = {tensor("x", DType::kBf16, TensorKind::kInput, {3, 5}, 0),
               tensor("w", DType::kF32, TensorKind::kConst, {3}, 64),
               tensor("s", DType::kF32, TensorKind::kConst, {}, 128),
               tensor("b", DType::kBf16, TensorKind::kConst, {1, 1, 1, 1, 1, 1, 1, 7}, 192),
               tensor("tmp", DType::kF32, TensorKind::kScratch, {2, 2}, 256),
               tensor("y", DType::kF32, TensorKind::kOutput, {5}, 512)};
  isa::Instr copy;
  copy.opcode = isa::Opcode::DmaCopy;
  copy.src = isa::make_addr(isa::Space::kHbm, 0);
  copy.dst = isa::make_addr(isa::Space::kSbuf, 0);
  copy.bytes = 10, copy.d1_count = 3, copy.d2_count = 1, copy.src_d1_stride = 10, copy.dst_d1_stride = 16384;
  copy.signal_en = 1, copy.signal_sem = 1, copy.signal_value = 1;
  isa::Instr cast = copy;
  cast.cast = 1, cast.src_dtype = uint64_t(isa::DType::kBf16), cast.dst_dtype = uint64_t(isa::DType::kF32);
  cast.d3_count = 2, cast.src_d3_stride = 4, cast.dst_d3_stride = 8;
  isa::Instr notify;
  notify.opcode = isa::Opcode::Notify;
  notify.tag = 42, notify.wait_en = 1, notify.wait_sem = 1, notify.wait_value = 2;
  m.streams = {{isa::kEngineDma0, {copy, notify}}, {isa::kEngineDma0 + 15, {cast}}};
  model::Model empty;
  empty.array_rows = empty.array_cols = 1;
  return {{"hand", m}, {"empty", empty}};
}

std::vector<std::pair<std::string, model::Model>> kernel_models() {
  const DeviceConfig& cfg = find_config("tc1-8");
  std::vector<std::pair<std::string, std::function<model::Model()>>> builders = {
      {"gemm", [&] { return kb::build_gemm(cfg, 16, 24, 20); }},
      {"gemm_at_f32",
       [&] {
         return kb::build_gemm(cfg, 12, 8, 9, {true, isa::DType::kF32, model::DType::kF32});
       }},
      {"linear", [&] { return kb::build_linear(cfg, 16, 16, 16); }},
      {"softmax", [&] { return kb::build_softmax(cfg, 8, 40); }},
      {"layernorm", [&] { return kb::build_layernorm(cfg, 8, 32, model::DType::kBf16); }},
      {"rmsnorm", [&] { return kb::build_rmsnorm(cfg, 8, 16); }},
      {"unary_exp", [&] { return kb::build_elementwise_unary(cfg, 8, 24, model::DType::kF32, {isa::ActFunc::kExp}); }},
      {"binary_max",
       [&] {
         return kb::build_elementwise_binary(cfg, 8, 24, model::DType::kF32, model::DType::kBf16, {isa::AluOp::kMax});
       }},
      {"transpose_te",
       [&] { return kb::build_transpose(cfg, 8, 16, model::DType::kBf16, {kb::TransposeRoute::kTensorE}); }},
      {"transpose_ve",
       [&] { return kb::build_transpose(cfg, 16, 8, model::DType::kF32, {kb::TransposeRoute::kVectorE}); }},
      {"attention",
       [&] {
         kb::AttentionOptions o;
         o.heads = 2, o.causal = true;
         return kb::build_attention(cfg, 16, 8, o);
       }},
      {"conv2d",
       [&] {
         kb::Conv2dOptions o;
         o.stride_h = 2, o.pad_h = o.pad_w = 1, o.act = isa::ActFunc::kRelu;
         return kb::build_conv2d(cfg, {1, 3, 7, 6, 4, 3, 3}, o);
       }},
  };
  std::vector<std::pair<std::string, model::Model>> out;
  for (auto& [name, build] : builders) {
    try {
      out.emplace_back(name, build());
    } catch (const std::exception& e) {  // a seed fewer is no reason to stop; say so
      std::fprintf(stderr, "tcemu-fuzz-seeds: skipping %s: %s\n", name.c_str(), e.what());
    }
  }
  return out;
}

// Instructions of every opcode: all fields zero, all fields at their widths' maximum, and random values
// (small ones too, so that named codes, spaces and dtypes appear).
std::vector<isa::Instr> random_instructions() {
  std::mt19937_64 rng(20240611);
  std::vector<isa::Instr> out;
  for (const isa::OpcodeInfo& op : isa::opcodes()) {
    for (int i = 0; i < 10; ++i) {
      isa::Instr in;
      in.opcode = op.opcode;
      for (const isa::FieldInfo& f : isa::fields()) {
        if (f.owner != op.opcode && f.owner != isa::Opcode::Invalid) continue;
        uint64_t v = rng() & mask_of(f.width);
        if (i == 0) v = 0;
        if (i == 1) v = mask_of(f.width);
        if (i % 3 == 2) v &= 0xF;
        in.*f.member = v;
      }
      out.push_back(in);
    }
  }
  return out;
}

// .npy files: numpy's layout (npy::serialize) of several shapes, and hand-made headers of every descr and
// version the reader accepts.
std::vector<std::pair<std::string, std::vector<uint8_t>>> npy_files() {
  std::vector<std::pair<std::string, std::vector<uint8_t>>> out;
  auto add_array = [&](const std::string& name, std::vector<int64_t> shape, std::vector<float> data) {
    out.emplace_back(name, npy::serialize({std::move(shape), std::move(data)}));
  };
  add_array("scalar", {}, {1.5f});
  add_array("empty", {0}, {});
  add_array("empty2", {3, 0}, {});
  add_array("vec", {3}, {1, -2, 3});
  add_array("mat", {2, 3}, {0, 1, 2, 3, 4, 5});
  add_array("cube", {2, 1, 2}, {-0.0f, 1e-40f, 3e38f, 1});
  auto add_raw = [&](const std::string& name, int major, const std::string& dict, std::vector<uint8_t> data) {
    std::vector<uint8_t> b = {0x93, 'N', 'U', 'M', 'P', 'Y', uint8_t(major), 0};
    const size_t len_bytes = major == 1 ? 2 : 4;
    std::string header = dict;
    while ((8 + len_bytes + header.size() + 1) % 64) header += ' ';
    header += '\n';
    for (size_t i = 0; i < len_bytes; ++i) b.push_back(uint8_t(header.size() >> (8 * i)));
    b.insert(b.end(), header.begin(), header.end());
    b.insert(b.end(), data.begin(), data.end());
    out.emplace_back(name, b);
  };
  auto bytes = [](size_t n) {
    std::vector<uint8_t> d(n);
    for (size_t i = 0; i < n; ++i) d[i] = uint8_t(0x3C + 5 * i);
    return d;
  };
  add_raw("f8", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", bytes(16));
  add_raw("f2", 1, "{'descr': '<f2', 'fortran_order': False, 'shape': (3, 1), }", bytes(6));
  add_raw("i4", 1, "{'descr': '|i4', 'fortran_order': False, 'shape': (2,), }", bytes(8));
  add_raw("i8_py2", 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (1L, 2L), }", bytes(16));
  add_raw("v2", 2, "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (1,)}", bytes(4));
  add_raw("v3", 3, "{'shape': (), 'fortran_order': False, 'descr': '<f4'}", bytes(4));
  add_raw("fortran", 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }", bytes(4));
  add_raw("big_endian", 1, "{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }", bytes(4));
  return out;
}

// Tokens of the assembly syntax, for libFuzzer's -dict: directives, mnemonics, field names with their '=',
// operand forms and names of codes.
std::string assembly_dict() {
  std::set<std::string> words = {".model",  ".config",   ".array",      ".hbm_window_bytes",
                                 ".tensor", ".data",     ".stream",     "rows=",
                                 "cols=",   "shape=[",   "hbm_offset=", "bytes=",
                                 "wait=s",  "signal=s",  ">=",          "+=",
                                 "input",   "output",    "const",       "scratch",
                                 "bf16",    "f32",       "i32",         "tensor",
                                 "vector",  "scalar",    "dma0",        "dma15",
                                 "hbm:0x",  "sbuf:0x",   "psum:0x",     "sbuf[p",
                                 "psum[p",  ":strides(", "nan:0x",      "inf",
                                 "-0",      "\\x",       "0x",          "# "};
  for (const auto& o : isa::opcodes()) words.insert(o.mnemonic);
  for (const auto& f : isa::fields()) words.insert(std::string(f.name) + "=");
  for (uint64_t c = 0; c < 32; ++c) {
    if (const char* n = isa::alu_op_name(c)) words.insert(n);
    if (const char* n = isa::act_func_name(c)) words.insert(n);
  }
  std::string s = "# libFuzzer dictionary for fuzz_assembly, written by tcemu-fuzz-seeds\n";
  for (const std::string& w : words) {
    s += '"';
    for (char c : w) {
      if (c == '"' || c == '\\') s += '\\';
      s += c;
    }
    s += "\"\n";
  }
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
    return 2;
  }
  try {
    const fs::path out = argv[1];
    for (const char* d : {"model_parse", "isa_decode", "assembly", "npy_parse"}) fs::create_directories(out / d);

    auto models = kernel_models();
    for (auto& m : hand_models()) models.push_back(std::move(m));
    std::set<std::vector<uint8_t>> instrs;  // distinct encodings
    for (const auto& [name, m] : models) {
      write(out / "model_parse" / (name + ".tcm"), model::serialize(m));
      write(out / "assembly" / (name + ".s"), model::to_assembly(m));
      for (const model::Stream& s : m.streams)
        for (const isa::Instr& in : s.instrs) instrs.insert(isa::encode_stream({&in, 1}));
    }
    for (const isa::Instr& in : random_instructions()) instrs.insert(isa::encode_stream({&in, 1}));
    size_t i = 0;
    for (const auto& b : instrs) {
      char name[32];
      std::snprintf(name, sizeof name, "instr%04zu", i++);
      write(out / "isa_decode" / name, b);
    }
    for (const auto& [name, b] : npy_files()) write(out / "npy_parse" / (name + ".npy"), b);
    write(out / "assembly.dict", assembly_dict());
    std::printf("tcemu-fuzz-seeds: %zu models (and their assembly), %zu instructions, %zu .npy files in %s\n",
                models.size(), instrs.size(), npy_files().size(), out.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tcemu-fuzz-seeds: %s\n", e.what());
    return 1;
  }
  return 0;
}
