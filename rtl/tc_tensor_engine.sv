// Copyright tcemu contributors.
//
// tc_tensor_engine: controller and top level of the tensor engine (docs/rtl.md is the reference).
//
// Computes Y[c][n] = sum_{r < K} W[r][c] * X[r][n] (r ascending from +0.0, tc_fp_pkg arithmetic) one
// moving column X[.][n] per cycle on a Rows x Cols weight-stationary systolic array (tc_pe_array).
//
// Protocol (all inputs sampled at the rising edge of clk_i; no back-pressure: every column presented
// with mv_valid_i is accepted):
//  - Weights go into the SHADOW bank, one row per cycle (wload_*). Write only while wload_ready_o is
//    high: it is low while any accepted column whose result is not yet complete multiplies with the
//    shadow bank (after a bank swap, the previous matmul's columns still in flight).
//  - The column carrying mv_first_i swaps the banks: it and all later columns use the bank that was the
//    shadow bank. Columns already in flight keep the bank they were accepted with, so matmuls may be
//    streamed back to back without a gap. A weight row written at the same edge as mv_first_i lands in
//    the bank that becomes active at that edge (the write happens first).
//  - Rows r >= mv_k_i pass partial sums through unchanged (K = 1..Rows).
//  - A column accepted at edge t appears on out_data_o with out_valid_o high after edge t + Latency,
//    Latency = Rows + Cols - 1; columns leave in the order they came in.
//
// wload_ready_o and busy_o depend only on registers (no combinational path from the inputs).
module tc_tensor_engine #(
  parameter int unsigned Rows = 8,
  parameter int unsigned Cols = 8,
  // Rising edges from the edge that accepts a column to the edge after which its result is valid.
  localparam int unsigned Latency = Rows + Cols - 1,
  localparam int unsigned RowW = $clog2(Rows),
  localparam int unsigned KW = $clog2(Rows + 1)
) (
  input  logic                clk_i,
  input  logic                rst_ni,          // asynchronous, active low

  // Weight load into the shadow bank (from the engine's sequencer).
  input  logic                wload_valid_i,
  input  logic [RowW-1:0]     wload_row_i,     // weight row r (the array row it multiplies X[r] with)
  input  logic [Cols*16-1:0]  wload_data_i,    // bf16 W[row][c] at [16c +: 16]
  output logic                wload_ready_o,   // to the sequencer: writing the shadow bank is safe

  // Moving columns (from the engine's sequencer).
  input  logic                mv_valid_i,
  input  logic                mv_first_i,      // first column of a matmul: swap the weight banks
  input  logic [KW-1:0]       mv_k_i,          // number of enabled rows K, 1..Rows
  input  logic [Rows*16-1:0]  mv_data_i,       // bf16 X[r][n] at [16r +: 16]

  // Results (to PSUM).
  output logic                out_valid_o,
  output logic [Cols*32-1:0]  out_data_o,      // fp32 Y[c][n] at [32c +: 32]

  output logic                busy_o           // any accepted column whose result is not yet out
);

  logic                active_d, active_q;      // bank used by the current matmul's columns
  logic                col_bank;                // bank of the column presented this cycle
  logic [Rows-1:0]     col_en;                  // per-row enables of that column
  // Column pipeline, one entry per cycle since acceptance: vld_q[i] / bank_q[i] describe the column
  // accepted i edges ago; vld_q[Latency] is the column whose result is on out_data_o.
  logic [Latency:0]    vld_d, vld_q;
  logic [Latency-1:0]  bank_d, bank_q;

  assign col_bank = mv_first_i ? ~active_q : active_q;
  assign active_d = (mv_valid_i && mv_first_i) ? ~active_q : active_q;

  always_comb begin
    for (int unsigned r = 0; r < Rows; r++) begin
      col_en[r] = mv_valid_i && (r < 32'(mv_k_i));
    end
  end

  assign vld_d  = {vld_q[Latency-1:0], mv_valid_i};
  assign bank_d = {bank_q[Latency-2:0], col_bank};

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      active_q <= 1'b0;
      vld_q    <= '0;
      bank_q   <= '0;
    end else begin
      active_q <= active_d;
      vld_q    <= vld_d;
      bank_q   <= bank_d;
    end
  end

  // A column reads weights up to and including the edge that produces its result, i.e. while it is
  // in stages 0 .. Latency-1. The shadow bank is the one the current matmul does not use.
  assign wload_ready_o = ~|(vld_q[Latency-1:0] & (bank_q ^ {Latency{active_q}}));
  assign busy_o        = |vld_q;
  assign out_valid_o   = vld_q[Latency];

  tc_pe_array #(
    .Rows (Rows),
    .Cols (Cols)
  ) u_array (
    .clk_i,
    .rst_ni,
    .wload_valid_i,
    .wload_bank_i  (~active_q),
    .wload_row_i,
    .wload_data_i,
    .mv_en_i       (col_en),
    .mv_bank_i     (col_bank),
    .mv_data_i,
    .psum_o        (out_data_o)
  );

endmodule
