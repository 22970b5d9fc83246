// Copyright tcemu contributors.
//
// tc_pe: one processing element of the weight-stationary systolic array, the documented cell.
//
// Each cycle the PE multiplies its stationary weight by the moving element arriving from the left
// and adds the product to the partial sum arriving from above (tc_fp_pkg::pe_mac). The moving element
// is passed on to the right and the new partial sum downwards, both registered (one cycle per hop).
// A moving element whose enable bit is low (row index >= K, or no column) passes the partial sum
// through unchanged.
//
// tc_pe_array does not instantiate this module (one instance per cell makes the simulator's generated
// code grow as Rows x Cols); it applies the same tc_fp_pkg function to 2-D register arrays. The
// weight banks and the bank select live in the array; this cell receives the selected weight.
module tc_pe (
  input  logic        clk_i,
  input  logic        rst_ni,      // asynchronous, active low

  input  logic [15:0] weight_i,    // stationary bf16 weight (from the selected weight bank)

  input  logic        mv_en_i,     // from the left neighbour: element valid and its row enabled
  input  logic [15:0] mv_data_i,   // from the left neighbour: moving bf16 element
  input  logic [31:0] psum_i,      // from the PE above (+0.0 in the top row): fp32 partial sum

  output logic        mv_en_o,     // to the right neighbour
  output logic [15:0] mv_data_o,   // to the right neighbour
  output logic [31:0] psum_o       // to the PE below (or the output deskew of the bottom row)
);

  logic        mv_en_q;
  logic [15:0] mv_data_q;
  logic [31:0] psum_d, psum_q;

  assign psum_d = tc_fp_pkg::pe_mac(psum_i, weight_i, mv_data_i, mv_en_i);

  always_ff @(posedge clk_i or negedge rst_ni) begin
    if (!rst_ni) begin
      mv_en_q   <= 1'b0;
      mv_data_q <= 16'h0000;
      psum_q    <= 32'h0000_0000;
    end else begin
      mv_en_q   <= mv_en_i;
      mv_data_q <= mv_data_i;
      psum_q    <= psum_d;
    end
  end

  assign mv_en_o   = mv_en_q;
  assign mv_data_o = mv_data_q;
  assign psum_o    = psum_q;

endmodule
