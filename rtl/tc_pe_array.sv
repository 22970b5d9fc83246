// Copyright tcemu contributors.
//
// tc_pe_array: Rows x Cols weight-stationary systolic array of processing elements (the cell is
// documented as tc_pe; its arithmetic is tc_fp_pkg::pe_mac).
//
// Dataflow (t0 = the rising edge at which a column is presented on mv_*_i):
//  - PE(r, c) holds two stationary bf16 weights, one per bank: w_q[bank][r][c].
//  - Moving element X[r] of a column enters row r skewed by r cycles (r skew registers) and then moves
//    one PE to the right per cycle; it sits in front of PE(r, c) after edge t0 + r + c. Every element
//    carries its column's bank select and its row enable (column valid and r < K) with it, so columns
//    of different matmuls (different banks) can be in the array at the same time.
//  - Partial sums move down one PE per cycle: at edge t0 + r + c + 1, PE(r, c) computes
//    psum[r][c] = pe_mac(psum[r-1][c] (+0.0 for r = 0), w[bank][r][c], x, en).
//  - Column c of the bottom row holds its result after edge t0 + Rows + c; the output deskew delays
//    column c by Cols - 1 - c more cycles, so a whole column result is on psum_o after edge
//    t0 + Rows + Cols - 1 (the fixed latency of this array).
//
// Implementation: 2-D register arrays updated by for-loops in a single always_ff block. The usual
// one-instance-per-cell generate style makes the simulator's generated code (and its compile time)
// grow as Rows x Cols; this style compiles in seconds at any size. The simulator cannot unroll large
// loops of non-blocking array assignments, so the registers are updated in place with blocking
// assignments, each array walked in the direction that reads every old value before it is overwritten
// (downwards in row and column index), and arrays read by others are updated after their readers:
// deskew first, then the PEs (bottom row first), then the weights. The block therefore has exactly
// the semantics of the equivalent non-blocking description. Nothing outside this block reads these
// registers except through continuous assignments.
module tc_pe_array #(
  parameter int unsigned Rows = 8,
  parameter int unsigned Cols = 8,
  localparam int unsigned RowW = (Rows > 1) ? $clog2(Rows) : 1
) (
  input  logic                 clk_i,
  input  logic                 rst_ni,          // asynchronous, active low

  // Weight load, from tc_tensor_engine: W[row][0..Cols-1] into bank wload_bank_i.
  input  logic                 wload_valid_i,
  input  logic                 wload_bank_i,
  input  logic [RowW-1:0]      wload_row_i,
  input  logic [Cols*16-1:0]   wload_data_i,    // element c at [16c +: 16]

  // Moving column, from tc_tensor_engine (registered here at the edge it is presented).
  input  logic [Rows-1:0]      mv_en_i,         // per row: column valid and row index < K
  input  logic                 mv_bank_i,       // weight bank the column multiplies with
  input  logic [Rows*16-1:0]   mv_data_i,       // X[r] at [16r +: 16]

  // Deskewed column result, to tc_tensor_engine: Y[c] at [32c +: 32].
  output logic [Cols*32-1:0]   psum_o
);

  // Row r's moving line: index j < r are the input skew registers, index r + c is the element in
  // front of PE(r, c). Rows shorter than the longest (r + Cols < Rows + Cols - 1) leave the tail unused.
  localparam int unsigned LineLen = Rows + Cols - 1;

  typedef struct packed {
    logic        en;     // column valid and row enabled
    logic        bank;   // weight bank of this element's column
    logic [15:0] data;   // bf16
  } mv_elem_t;

  logic [15:0] w_q   [2][Rows][Cols];
  mv_elem_t    mv_q  [Rows][LineLen];
  logic [31:0] ps_q  [Rows][Cols];
  // Output deskew: column c uses dsk_q[c][0 .. Cols-2-c]; column Cols-1 needs no delay.
  logic [31:0] dsk_q [Cols][Cols-1];

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      for (int unsigned r = 0; r < Rows; r++) begin
        for (int unsigned c = 0; c < Cols; c++) begin
          w_q[0][r][c] = 16'h0000;
          w_q[1][r][c] = 16'h0000;
          ps_q[r][c]   = 32'h0000_0000;
        end
        for (int unsigned j = 0; j < LineLen; j++) begin
          mv_q[r][j] = '0;
        end
      end
      for (int unsigned c = 0; c < Cols; c++) begin
        for (int unsigned j = 0; j < Cols - 1; j++) begin
          dsk_q[c][j] = 32'h0000_0000;
        end
      end
    end else begin
      // Output deskew: reads the bottom row's partial sums before the PEs overwrite them.
      for (int c = 0; c < int'(Cols) - 1; c++) begin
        for (int j = int'(Cols) - 2 - c; j > 0; j--) begin
          dsk_q[c][j] = dsk_q[c][j-1];
        end
        dsk_q[c][0] = ps_q[Rows-1][c];
      end

      // PEs, bottom row first so that ps_q[r-1] still holds last cycle's value when row r reads it;
      // right to left so that each moving element is used before its left neighbour's replaces it.
      for (int r = int'(Rows) - 1; r >= 0; r--) begin
        for (int c = int'(Cols) - 1; c >= 0; c--) begin
          ps_q[r][c] = tc_fp_pkg::pe_mac((r == 0) ? 32'h0000_0000 : ps_q[r-1][c],
                                         w_q[mv_q[r][r+c].bank][r][c],
                                         mv_q[r][r+c].data, mv_q[r][r+c].en);
        end
        for (int j = r + int'(Cols) - 1; j > 0; j--) begin
          mv_q[r][j] = mv_q[r][j-1];
        end
        mv_q[r][0] = '{en: mv_en_i[r], bank: mv_bank_i, data: mv_data_i[16*r +: 16]};
      end

      // Weight load after the PEs have read this cycle's weights.
      if (wload_valid_i) begin
        for (int unsigned c = 0; c < Cols; c++) begin
          w_q[wload_bank_i][wload_row_i][c] = wload_data_i[16*c +: 16];
        end
      end
    end
  end

  always_comb begin
    for (int unsigned c = 0; c < Cols - 1; c++) begin
      psum_o[32*c +: 32] = dsk_q[c][Cols-2-c];
    end
    psum_o[32*(Cols-1) +: 32] = ps_q[Rows-1][Cols-1];
  end

endmodule
