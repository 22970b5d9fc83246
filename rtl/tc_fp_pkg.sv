// Copyright tcemu contributors.
//
// tc_fp_pkg: the tensor engine's arithmetic, as functions, so that the processing element (tc_pe)
// and the PE array (tc_pe_array) share one source for it.
//
// Numerics policy (docs/rtl.md and docs/numerics.md; common/src/numerics.cpp is the independent
// golden model that the tests compare against bit for bit):
//  - Inputs: bf16 and fp32 subnormals read as zero of the same sign (DAZ).
//  - NaN: any NaN input, inf * 0 and inf + (-inf) give the canonical quiet NaN 0x7FC00000.
//  - bf16_mul: the product of two 8-bit significands is exact in fp32; overflow gives a signed
//    infinity, a nonzero product below 2^-126 is flushed to zero (FTZ) with sign a.s ^ b.s.
//  - fp32_add: IEEE-754 binary32 addition rounding to nearest, ties to even; overflow gives a signed
//    infinity; a nonzero result below 2^-126 is flushed to zero with the sign of the exact result;
//    an exact zero is +0 except (-0) + (-0) = -0.
//
// Everything is kept within 64 bits so that the simulator's generated code stays on native
// integers (wider vectors are much slower to simulate).
package tc_fp_pkg;

  localparam logic [31:0] F32CanonicalNan = 32'h7FC0_0000;

  // bf16 x bf16 -> fp32 bits.
  function automatic logic [31:0] bf16_mul(logic [15:0] a, logic [15:0] b);
    logic        sign;
    logic [7:0]  ea, eb;
    logic [6:0]  fa, fb;
    logic        a_zero, b_zero, a_inf, b_inf, a_nan, b_nan;
    logic [15:0] prod;
    logic [9:0]  exp_sum;   // ea + eb + 1, at most 509
    logic [31:0] res;

    sign   = a[15] ^ b[15];
    ea     = a[14:7];
    eb     = b[14:7];
    fa     = a[6:0];
    fb     = b[6:0];
    a_zero = (ea == 8'h00);                   // zero or subnormal (DAZ)
    b_zero = (eb == 8'h00);
    a_inf  = (ea == 8'hFF) && (fa == 7'h00);
    b_inf  = (eb == 8'hFF) && (fb == 7'h00);
    a_nan  = (ea == 8'hFF) && (fa != 7'h00);
    b_nan  = (eb == 8'hFF) && (fb != 7'h00);

    // Significands 1.fa x 1.fb lie in [1, 4): prod is 16 bits, its MSB says which binade.
    prod    = {8'h00, 1'b1, fa} * {8'h00, 1'b1, fb};
    // Biased fp32 exponent of the product is ea + eb - 127 (+1 if prod >= 2.0). Keep it offset by
    // 127 so that it stays unsigned: exp_sum - 127 is the real biased exponent.
    exp_sum = {2'b00, ea} + {2'b00, eb} + {9'd0, prod[15]};

    if (a_nan || b_nan || (a_inf && b_zero) || (b_inf && a_zero)) begin
      res = F32CanonicalNan;
    end else if (a_inf || b_inf) begin
      res = {sign, 8'hFF, 23'd0};
    end else if (a_zero || b_zero) begin
      res = {sign, 31'd0};
    end else if (exp_sum >= 10'd382) begin  // biased exponent >= 255: |p| >= 2^128
      res = {sign, 8'hFF, 23'd0};
    end else if (exp_sum <= 10'd127) begin  // biased exponent <= 0: |p| < 2^-126, flush
      res = {sign, 31'd0};
    end else begin
      logic [7:0]  exp_res;
      logic [22:0] frac;
      exp_res = 8'(exp_sum - 10'd127);
      frac    = prod[15] ? {prod[14:0], 8'd0} : {prod[13:0], 9'd0};
      res     = {sign, exp_res, frac};
    end
    return res;
  endfunction

  // fp32 + fp32 -> fp32 bits (see the policy above).
  function automatic logic [31:0] fp32_add(logic [31:0] a, logic [31:0] b);
    logic [31:0] op_big, op_small;
    logic        a_zero, b_zero, a_inf, b_inf, a_nan, b_nan;
    logic [31:0] res;

    a_zero = (a[30:23] == 8'h00);             // zero or subnormal (DAZ)
    b_zero = (b[30:23] == 8'h00);
    a_inf  = (a[30:23] == 8'hFF) && (a[22:0] == 23'd0);
    b_inf  = (b[30:23] == 8'hFF) && (b[22:0] == 23'd0);
    a_nan  = (a[30:23] == 8'hFF) && (a[22:0] != 23'd0);
    b_nan  = (b[30:23] == 8'hFF) && (b[22:0] != 23'd0);

    if (a_nan || b_nan || (a_inf && b_inf && (a[31] != b[31]))) begin
      res = F32CanonicalNan;
    end else if (a_inf) begin
      res = a;
    end else if (b_inf) begin
      res = b;
    end else if (a_zero && b_zero) begin
      res = {a[31] & b[31], 31'd0};
    end else if (a_zero) begin
      res = b;
    end else if (b_zero) begin
      res = a;
    end else begin
      // Two normal numbers. Operand order, effective subtraction and rounding are written as selects
      // and arithmetic rather than if/else, which the simulator compiles without unpredictable
      // branches; the normalisation steps below stay ifs, which measured faster.
      logic        swap, eff_sub, round_up, carry;
      logic [63:0] sig_big, sig_small, sum, norm;
      logic [7:0]  shift;
      logic [5:0]  lz;
      logic [23:0] frac_rnd;  // rounded fraction with its carry out in bit 23
      logic [9:0]  exp_res;   // two's complement: ebig + 8 - lz (+1 on rounding carry)

      // Order by magnitude so that op_big - op_small >= 0.
      swap     = (a[30:0] < b[30:0]);
      op_big   = swap ? b : a;
      op_small = swap ? a : b;
      shift    = op_big[30:23] - op_small[30:23];
      // The op_big significand sits at bits [55:32]; the op_small one is shifted right by the exponent
      // difference. Up to 32 places nothing is lost. Beyond that the op_small operand is below a quarter
      // of an ulp of any possible result (even after a one-place left normalisation), so only its
      // being nonzero matters for rounding: a single sticky 1 stands in for it.
      sig_big   = {8'd0, 1'b1, op_big[22:0], 32'd0};
      sig_small = (shift > 8'd32) ? 64'd1 : ({8'd0, 1'b1, op_small[22:0], 32'd0} >> shift);
      // Effective subtraction as sig_big + ~sig_small + 1.
      eff_sub   = op_big[31] ^ op_small[31];
      sum       = sig_big + (sig_small ^ {64{eff_sub}}) + {63'd0, eff_sub};

      if (sum == 64'd0) begin
        res = 32'd0;                          // exact cancellation: +0
      end else begin
        // Normalise: move the leading one to bit 63 by a binary search (faster to simulate than a
        // loop); lz = number of places moved.
        norm = sum;
        lz   = 6'd0;
        if (norm[63:32] == 32'd0) begin norm = {norm[31:0], 32'd0}; lz = lz + 6'd32; end
        if (norm[63:48] == 16'd0) begin norm = {norm[47:0], 16'd0}; lz = lz + 6'd16; end
        if (norm[63:56] == 8'd0)  begin norm = {norm[55:0], 8'd0};  lz = lz + 6'd8;  end
        if (norm[63:60] == 4'd0)  begin norm = {norm[59:0], 4'd0};  lz = lz + 6'd4;  end
        if (norm[63:62] == 2'd0)  begin norm = {norm[61:0], 2'd0};  lz = lz + 6'd2;  end
        if (norm[63] == 1'b0)     begin norm = {norm[62:0], 1'b0};  lz = lz + 6'd1;  end

        // A leading one at bit 55 means the exponent of op_big; at bit 63 - lz it is ebig + 8 - lz.
        // Round to nearest, ties to even: round bit norm[39], sticky bits norm[38:0].
        // The hidden bit is norm[63]; a carry out of the fraction means the significand rounded up to
        // 2.0: fraction bits all zero, exponent + 1.
        round_up = norm[39] & ((norm[38:0] != 39'd0) | norm[40]);
        frac_rnd = {1'b0, norm[62:40]} + {23'd0, round_up};
        carry    = frac_rnd[23];
        exp_res  = {2'b00, op_big[30:23]} + 10'd8 - {4'd0, lz} + {9'd0, carry};

        if (!exp_res[9] && (exp_res >= 10'd255)) begin
          res = {op_big[31], 8'hFF, 23'd0};      // overflow
        end else if (exp_res[9] || (exp_res == 10'd0)) begin
          res = {op_big[31], 31'd0};             // below 2^-126: flush to zero, sign of exact result
        end else begin
          res = {op_big[31], exp_res[7:0], frac_rnd[22:0]};
        end
      end
    end
    return res;
  endfunction

  // One multiply-accumulate step of a processing element: rows that are not enabled pass the
  // partial sum through unchanged.
  // (An if rather than ?: so that the simulator evaluates the arithmetic only for enabled rows.)
  function automatic logic [31:0] pe_mac(logic [31:0] psum, logic [15:0] w, logic [15:0] x,
                                         logic en);
    logic [31:0] res;
    if (en) begin
      res = fp32_add(psum, bf16_mul(w, x));
    end else begin
      res = psum;
    end
    return res;
  endfunction

endpackage
