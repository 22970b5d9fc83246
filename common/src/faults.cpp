#include "tcemu/faults.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <sstream>

#include "tcemu/error.h"
#include "tcemu/file_io.h"
#include "tcemu/isa.h"

namespace tcemu::fi {

namespace {

constexpr Kind kKinds[] = {Kind::kDmaError,    Kind::kBitFlip,        Kind::kHang,
                           Kind::kIrqDrop,     Kind::kIrqDelay,       Kind::kIrqSpurious,
                           Kind::kDoorbellIgnore, Kind::kCompletionCorrupt};

// The keys each kind takes (besides job=, which all but doorbell_ignore take).
std::vector<std::string> keys_of(Kind k) {
  switch (k) {
    case Kind::kDmaError: return {"job", "transfer"};
    case Kind::kBitFlip: return {"job", "space", "bits", "cycle", "addr"};
    case Kind::kHang: return {"job", "engine", "instr"};
    case Kind::kIrqDrop: return {"job"};
    case Kind::kIrqDelay: return {"job", "cycles"};
    case Kind::kIrqSpurious: return {"job", "cycle"};
    case Kind::kDoorbellIgnore: return {"count"};
    case Kind::kCompletionCorrupt: return {"job"};
  }
  return {};
}

const char* kSpaces[] = {"hbm", "sbuf", "psum"};

int engine_from_name(const std::string& name) {
  for (int e = 0; e < isa::kMaxEngines; ++e)
    if (isa::engine_name(e) == name) return e;
  return -1;
}

uint64_t number(const std::string& v, const std::string& where, const std::string& key, uint64_t lo, uint64_t hi) {
  size_t used = 0;
  uint64_t x = 0;
  try {
    if (!v.empty() && v[0] != '-') x = std::stoull(v, &used, 0);
  } catch (...) {
    used = 0;
  }
  if (used == 0 || used != v.size())
    throw Error(ErrorCode::kFormat, fmt::format("{}: {}='{}' is not a non-negative integer", where, key, v));
  if (x < lo || x > hi)
    throw Error(ErrorCode::kFormat, fmt::format("{}: {}={} is out of range [{}, {}]", where, key, x, lo, hi));
  return x;
}

Fault parse_line(const std::vector<std::string>& words, const std::string& where) {
  Fault f;
  bool known = false;
  for (Kind k : kKinds)
    if (words[0] == kind_name(k)) f.kind = k, known = true;
  if (!known) {
    std::string all;
    for (Kind k : kKinds) all += std::string(all.empty() ? "" : ", ") + kind_name(k);
    throw Error(ErrorCode::kFormat, fmt::format("{}: unknown fault '{}' (known: {})", where, words[0], all));
  }
  const std::vector<std::string> allowed = keys_of(f.kind);
  std::map<std::string, std::string> kv;
  for (size_t i = 1; i < words.size(); ++i) {
    const auto eq = words[i].find('=');
    if (eq == std::string::npos || eq == 0)
      throw Error(ErrorCode::kFormat, fmt::format("{}: '{}' is not KEY=VALUE", where, words[i]));
    const std::string key = words[i].substr(0, eq);
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      std::string keys;
      for (auto& a : allowed) keys += std::string(keys.empty() ? "" : ", ") + a;
      throw Error(ErrorCode::kFormat,
                  fmt::format("{}: {} takes no '{}' (it takes: {})", where, kind_name(f.kind), key, keys));
    }
    if (!kv.emplace(key, words[i].substr(eq + 1)).second)
      throw Error(ErrorCode::kFormat, fmt::format("{}: '{}' is given twice", where, key));
  }
  auto get = [&](const char* key, uint64_t def, uint64_t lo, uint64_t hi) {
    auto it = kv.find(key);
    return it == kv.end() ? def : number(it->second, where, key, lo, hi);
  };
  f.job = uint32_t(get("job", 1, 1, UINT32_MAX));
  switch (f.kind) {
    case Kind::kDmaError: f.transfer = uint32_t(get("transfer", 1, 1, UINT32_MAX)); break;
    case Kind::kBitFlip: {
      auto sp = kv.find("space");
      if (sp == kv.end()) throw Error(ErrorCode::kFormat, fmt::format("{}: bit_flip needs space=sbuf|psum|hbm", where));
      f.space = -1;
      for (int s = 0; s < 3; ++s)
        if (sp->second == kSpaces[s]) f.space = s;
      if (f.space < 0)
        throw Error(ErrorCode::kFormat, fmt::format("{}: space='{}' is not sbuf, psum or hbm", where, sp->second));
      if (kv.find("bits") == kv.end()) throw Error(ErrorCode::kFormat, fmt::format("{}: bit_flip needs bits=1|2", where));
      f.bits = int(get("bits", 1, 1, 2));
      f.cycle = get("cycle", 0, 0, UINT64_MAX);
      if (auto a = kv.find("addr"); a != kv.end()) {
        // addr=OFFSET or addr=SPACE:OFFSET (the space must then be the fault's).
        std::string v = a->second;
        if (auto colon = v.find(':'); colon != std::string::npos) {
          if (v.substr(0, colon) != kSpaces[f.space])
            throw Error(ErrorCode::kFormat, fmt::format("{}: addr={} is not in space {}", where, v, kSpaces[f.space]));
          v = v.substr(colon + 1);
        }
        f.addr = number(v, where, "addr", 0, UINT64_MAX);
      }
      break;
    }
    case Kind::kHang: {
      auto e = kv.find("engine");
      if (e == kv.end()) throw Error(ErrorCode::kFormat, fmt::format("{}: hang needs engine=NAME (tensor, vector, scalar, dma0, ...)", where));
      f.engine = engine_from_name(e->second);
      if (f.engine < 0)
        throw Error(ErrorCode::kFormat, fmt::format("{}: engine='{}' is not an engine (tensor, vector, scalar, dma0..dma15)", where, e->second));
      f.instr = uint32_t(get("instr", 0, 0, UINT32_MAX));
      break;
    }
    case Kind::kIrqDelay:
      if (kv.find("cycles") == kv.end()) throw Error(ErrorCode::kFormat, fmt::format("{}: irq_delay needs cycles=D", where));
      f.delay = get("cycles", 0, 1, UINT64_MAX);
      break;
    case Kind::kIrqSpurious: f.cycle = get("cycle", 0, 0, UINT64_MAX); break;
    case Kind::kDoorbellIgnore: f.count = uint32_t(get("count", 1, 1, UINT32_MAX)); break;
    case Kind::kIrqDrop:
    case Kind::kCompletionCorrupt: break;
  }
  return f;
}

std::vector<std::string> split_words(const std::string& line) {
  std::string s = line.substr(0, line.find('#'));
  std::istringstream in(s);
  std::vector<std::string> words;
  for (std::string w; in >> w;) words.push_back(w);
  return words;
}

}  // namespace

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::kDmaError: return "dma_error";
    case Kind::kBitFlip: return "bit_flip";
    case Kind::kHang: return "hang";
    case Kind::kIrqDrop: return "irq_drop";
    case Kind::kIrqDelay: return "irq_delay";
    case Kind::kIrqSpurious: return "irq_spurious";
    case Kind::kDoorbellIgnore: return "doorbell_ignore";
    case Kind::kCompletionCorrupt: return "completion_corrupt";
  }
  return "?";
}

Plan parse(const std::string& text, const std::string& source) {
  Plan plan;
  std::istringstream in(text);
  int n = 0;
  for (std::string line; std::getline(in, line);) {
    ++n;
    const std::vector<std::string> words = split_words(line);
    if (words.empty()) continue;
    const std::string where = fmt::format("{}:{}", source, n);
    if (words[0] == "seed") {
      if (words.size() != 2) throw Error(ErrorCode::kFormat, fmt::format("{}: expected 'seed N'", where));
      plan.seed = number(words[1], where, "seed", 0, UINT64_MAX);
      continue;
    }
    plan.faults.push_back(parse_line(words, where));
  }
  return plan;
}

void add(Plan& plan, const std::string& line, const std::string& source) {
  const std::vector<std::string> words = split_words(line);
  if (words.empty()) throw Error(ErrorCode::kFormat, fmt::format("{}: empty fault", source));
  plan.faults.push_back(parse_line(words, fmt::format("{} '{}'", source, line)));
}

Plan load(const std::string& path) {
  const std::vector<uint8_t> bytes = read_file(path);
  return parse(std::string(bytes.begin(), bytes.end()), path);
}

std::string describe(const Fault& f) {
  std::string s = kind_name(f.kind);
  if (f.kind != Kind::kDoorbellIgnore) s += fmt::format(" job={}", f.job);
  switch (f.kind) {
    case Kind::kDmaError: s += fmt::format(" transfer={}", f.transfer); break;
    case Kind::kBitFlip:
      s += fmt::format(" space={} bits={} cycle={}", kSpaces[f.space], f.bits, f.cycle);
      if (f.addr) s += fmt::format(" addr={}:0x{:x}", kSpaces[f.space], *f.addr);
      break;
    case Kind::kHang: s += fmt::format(" engine={} instr={}", isa::engine_name(f.engine), f.instr); break;
    case Kind::kIrqDelay: s += fmt::format(" cycles={}", f.delay); break;
    case Kind::kIrqSpurious: s += fmt::format(" cycle={}", f.cycle); break;
    case Kind::kDoorbellIgnore: s += fmt::format(" count={}", f.count); break;
    case Kind::kIrqDrop:
    case Kind::kCompletionCorrupt: break;
  }
  return s;
}

std::string to_spec(const Plan& plan) {
  std::string s = fmt::format("seed {}\n", plan.seed);
  for (const Fault& f : plan.faults) s += describe(f) + "\n";
  return s;
}

}  // namespace tcemu::fi
