#include "fault_options.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "tcemu/error.h"

namespace tcemu::cli {

fi::Plan fault_plan(const std::vector<std::string>& lines, const std::optional<std::string>& file,
                    const std::optional<std::string>& seed) {
  fi::Plan plan;
  if (file) plan = fi::load(*file);
  for (const std::string& line : lines) fi::add(plan, line, "--fault");
  if (seed) {
    size_t used = 0;
    uint64_t s = 0;
    try {
      if (!seed->empty() && (*seed)[0] != '-') s = std::stoull(*seed, &used, 0);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != seed->size())
      throw Error(ErrorCode::kFormat, fmt::format("--fault-seed: '{}' is not a non-negative integer", *seed));
    plan.seed = s;
  }
  return plan;
}

std::string faults_text(const fi::Plan& plan, const rt::RunResult& r) {
  const drv::Recovery& c = r.recovery;
  if (plan.empty() && r.recovered.empty() && !c.any()) return "";
  constexpr const char* kIndent = "                ";  // under the values of the report's other lines
  std::string s;
  std::string injected;
  for (const fi::Fault& f : plan.faults) injected += fmt::format("{}{}", injected.empty() ? "" : "; ", fi::describe(f));
  s += fmt::format("  faults        injected: {}{}\n", plan.empty() ? "none" : injected,
                   plan.empty() ? "" : fmt::format(" (seed {})", plan.seed));
  for (const rt::RecoveryEvent& e : r.recovered)
    s += fmt::format("{}recovered: attempt {} failed, resubmitted: {}\n", kIndent, e.attempt, e.message);
  s += fmt::format(
      "{}retries: {}; interrupts: {} missed, {} late, {} spurious; doorbell retries: {}; ECC "
      "corrections: {}\n",
      kIndent, r.retries, c.missed_irqs, c.late_irqs, c.spurious_irqs, c.doorbell_retries, c.ecc_corrected);
  if (r.retries)
    s += fmt::format("{}device cycles: {} for all attempts ({} for the job that completed)\n", kIndent, r.device_cycles,
                     r.cycles);
  return s;
}

std::string faults_json(const fi::Plan& plan, const rt::RunResult& r) {
  nlohmann::ordered_json j;
  j["injected"] = nlohmann::json::array();
  for (const fi::Fault& f : plan.faults) j["injected"].push_back(fi::describe(f));
  j["seed"] = plan.seed;
  j["retries"] = r.retries;
  j["recovered"] = nlohmann::json::array();
  for (const rt::RecoveryEvent& e : r.recovered) {
    nlohmann::ordered_json x;
    x["attempt"] = e.attempt;
    x["error"] = error_code_name(e.code);
    x["fault"] = e.fault ? nlohmann::ordered_json(regs::fault_name(*e.fault)) : nlohmann::ordered_json(nullptr);
    x["message"] = e.message;
    j["recovered"].push_back(std::move(x));
  }
  j["missed_irqs"] = r.recovery.missed_irqs;
  j["late_irqs"] = r.recovery.late_irqs;
  j["spurious_irqs"] = r.recovery.spurious_irqs;
  j["doorbell_retries"] = r.recovery.doorbell_retries;
  j["ecc_corrected"] = r.recovery.ecc_corrected;
  j["device_cycles"] = r.device_cycles;
  return j.dump();
}

}  // namespace tcemu::cli
