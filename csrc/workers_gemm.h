/* Small-matrix GEMM tiles of the fused epoch, compiled once per (dtype, SIMD variant) by
   workers.h, with VEC (a GCC vector of VLEN REALs: 32 bytes for baseline and AVX2, 64 for
   AVX-512), MR (rows of a tile) and PW = 2 * VLEN (its columns: two vectors).

   Why not BLAS here: the products of an MLP minibatch are small (100 rows, layers of
   10..1000 units), and a BLAS call costs several microseconds before it computes
   anything (argument checks, packing whole matrices, waking its threads). These loops
   run on the calling thread (the fused epoch shares the work out itself), and copy only
   what a tile streams over: one panel of the B operand, and for the weight gradient one
   block of columns of the layer's input. Operands are arrays of row pointers, so a
   minibatch is read straight out of X by index, never gathered. Each output element is
   summed in the same order whichever tile or thread computes it, so results do not
   depend on the number of threads. */

#define VZERO(v) ((v) = (VEC){0})
#define VLOAD(v, p) memcpy(&(v), (p), sizeof(VEC))
#define VSTORE(p, v) memcpy((p), &(v), sizeof(VEC))

/* tile[r][j] = sum_p A(r0 + r, p) * panel[p * PW + j] for r < mr (a constant <= MR once
   inlined), j < nv * VLEN (the panel: columns of b packed by pack_panel).
   A(i, p) is a[i][p]; or packed[p * MR + i - r0] when packed is given (a block of
   a transposed operand, laid out by pack_columns). Rows past `last` repeat row `last`, so
   a short tile computes garbage rows that nobody stores. */
ENG_INLINE TARGET void VFN(tile_of)(const REAL *const *a, const REAL *packed, int64_t r0,
                                    int64_t last, const REAL *panel, int64_t k, int nv,
                                    REAL *tile, const int mr) {
    VEC acc[MR][2], b0, b1;
    const REAL *ar[MR];
    /* the pointers run from their ends with p = -k ... -1: no register for the bound, so
       a 12-row tile's 12 row pointers, the panel's and p fit x86-64's 15 registers */
    const REAL *panel_end = panel + k * PW;
    const REAL *packed_end = packed != NULL ? packed + k * MR : NULL;   /* no offset on NULL */
    for (int r = 0; r < mr; r++) {
        ar[r] = packed != NULL ? NULL : a[r0 + r < last ? r0 + r : last] + k;
        VZERO(acc[r][0]);
        VZERO(acc[r][1]);
    }
    /* one loop per operand layout and panel width, so that each stays a plain FMA stream */
#define BCAST_LOOP(A_AT, NV)                                                               \
    for (int64_t p = -k; p < 0; p++) {                                                     \
        const REAL *bp = panel_end + p * PW;                                               \
        VLOAD(b0, bp);                                                                     \
        if (NV == 2) VLOAD(b1, bp + VLEN);                                                 \
        for (int r = 0; r < mr; r++) {                                                \
            REAL s = A_AT;                                                                 \
            acc[r][0] += s * b0;                                                           \
            if (NV == 2) acc[r][1] += s * b1;                                              \
        }                                                                                  \
    }
    if (packed != NULL) {
        if (nv == 2) { BCAST_LOOP(packed_end[p * MR + r], 2) }
        else { BCAST_LOOP(packed_end[p * MR + r], 1) }
    } else {
        if (nv == 2) { BCAST_LOOP(ar[r][p], 2) }
        else { BCAST_LOOP(ar[r][p], 1) }
    }
#undef BCAST_LOOP
    for (int r = 0; r < mr; r++) {
        VSTORE(tile + r * PW, acc[r][0]);
        VSTORE(tile + r * PW + VLEN, acc[r][1]);
    }
}

/* A tile of `rows` (<= MR) rows, as tile_of, in the smallest of MR / 3, 2 MR / 3 and MR
   rows that holds them: the last tile of an uneven range (a 100-row minibatch split over
   two threads, 784 inputs in tiles of 12) costs about its rows, not a whole tile. Each
   output is still summed over p in the same order, whichever tile forms it. */
ENG_INLINE TARGET void VFN(bcast_tile)(const REAL *const *a, const REAL *packed, int64_t r0,
                                       int64_t last, const REAL *panel, int64_t k, int nv,
                                       int64_t rows, REAL *tile) {
    if (rows <= MR / 3)
        VFN(tile_of)(a, packed, r0, last, panel, k, nv, tile, MR / 3);
    else if (rows <= 2 * MR / 3)
        VFN(tile_of)(a, packed, r0, last, panel, k, nv, tile, 2 * MR / 3);
    else
        VFN(tile_of)(a, packed, r0, last, panel, k, nv, tile, MR);
}

/* Columns [c_lo, c_hi) of a (m rows) in blocks of MR columns, each block p-major:
   out[b * m * MR + p * MR + r] = a[p][c_lo + b * MR + r], the last column
   repeated past c_hi; a tile then reads its block of a^T as one contiguous stream. Row by
   row, so that each (page-scattered) row of a is read once, in order. */
ENG_INLINE TARGET void VFN(pack_columns)(const REAL *const *a, int64_t m, int64_t c_lo,
                                         int64_t c_hi, REAL *out) {
    int64_t full = c_lo + (c_hi - c_lo) / MR * MR;
    for (int64_t p = 0; p < m; p++) {
        const REAL *row = a[p];
        REAL *dst = out + p * MR;
        for (int64_t c0 = c_lo; c0 < full; c0 += MR, dst += m * MR)
            memcpy(dst, row + c0, MR * sizeof(REAL));
        if (full < c_hi)
            for (int64_t r = 0; r < MR; r++)
                dst[r] = row[full + r < c_hi ? full + r : c_hi - 1];
    }
}

/* Columns [j0, j0 + width) of b (k rows; width <= PW) copied into a contiguous
   panel, zero-padded to PW columns. The tiles then read one stream: rows of b read
   in place would each sit on their own page (rows of X, say), and the TLB misses halved
   the speed of the loop. */
ENG_INLINE TARGET void VFN(pack_panel)(const REAL *const *b, int64_t j0, int64_t width,
                                       int64_t k, REAL *panel) {
    for (int64_t p = 0; p < k; p++) {
        REAL *row = panel + p * PW;
        const REAL *src = b[p] + j0;
        if (width == PW) {
            memcpy(row, src, PW * sizeof(REAL));
        } else {
            for (int64_t j = 0; j < PW; j++) row[j] = j < width ? src[j] : (REAL)0;
        }
    }
}

/* A layer's weights as the fused epoch keeps them: W^T (n_in x n_out) cut into panels of
   PW outputs, panel q holding n_in rows of W[q * PW ...][j] (zero past
   n_out). The forward pass reads a panel as it is; the gradient tiles write rows of it. */
#define PANEL_AT(wp, n_in, o, j) \
    ((wp) + ((o) / (PW) * (n_in) + (j)) * PW + (o) % (PW))

/* A narrow last panel: n_out % PW outputs, 1 to TAIL_MAX of them. A panel tile would
   spend a whole vector (or two) of multiply-adds per input on them, mostly on zeros
   (100 outputs = 3 panels of 32 floats and 4 more, which cost 70% of a whole panel), so
   their products go along the inputs instead (gemm_nn_tail, gemm_tn_tail). The forward
   pass reads those outputs' rows of W from a copy after the panels: TAIL_MAX rows of
   n_in, zero past n_out, that the gradient tiles keep up to date. TAIL_MAX: 4 with
   AVX-512's 32 registers (4 rows x 4 outputs of accumulators), a quarter vector else. */
#define TAIL_MAX (VBYTES == 64 ? 4 : VLEN / 4 > 0 ? VLEN / 4 : 1)
#define TAIL_AT(wp, n_out, n_in) ((wp) + ((n_out) + PW - 1) / (PW) * (PW) * (n_in))

static inline int VFN(narrow_tail)(int64_t n_out) {
    int64_t w = n_out % PW;
    return w <= TAIL_MAX ? (int)w : 0;
}

/* w (n_out x n_in, row-major) into that layout, zero past n_out; and back. In blocks of
   PANEL_BLOCK inputs of one panel: the reads are whole cache lines of w's rows and the
   writes stay in a few KB of the panel (element by element, down a panel's PW-strided
   column, it cost ~3 ns an element: 0.26 ms a call for a 784 x 100 layer, more than a
   100-row forward pass itself). */
#define PANEL_BLOCK 16
TARGET static void VFN(to_panels)(const REAL *w, int64_t n_out, int64_t n_in, REAL *wp) {
    int64_t panels = (n_out + PW - 1) / (PW), first = n_out - VFN(narrow_tail)(n_out);
    for (int64_t q = 0; q < panels; q++) {
        REAL *panel = wp + q * n_in * PW;
        for (int64_t j0 = 0; j0 < n_in; j0 += PANEL_BLOCK) {
            int64_t j1 = j0 + PANEL_BLOCK < n_in ? j0 + PANEL_BLOCK : n_in;
            for (int64_t c = 0; c < PW; c++) {
                const REAL *row = q * PW + c < n_out ? w + (q * PW + c) * n_in : NULL;
                for (int64_t j = j0; j < j1; j++)
                    panel[j * PW + c] = row != NULL ? row[j] : (REAL)0;
            }
        }
    }
    REAL *tail = TAIL_AT(wp, n_out, n_in);
    for (int64_t o = 0; o < TAIL_MAX; o++) {
        if (first + o < n_out)
            memcpy(tail + o * n_in, w + (first + o) * n_in, (size_t)n_in * sizeof(REAL));
        else
            memset(tail + o * n_in, 0, (size_t)n_in * sizeof(REAL));
    }
}

/* Inputs [j_lo, j_hi) of every output (the whole layer: 0, n_in). */
TARGET static void VFN(from_panels)(const REAL *wp, int64_t n_out, int64_t n_in,
                                    int64_t j_lo, int64_t j_hi, REAL *w) {
    for (int64_t q = 0; q * PW < n_out; q++) {
        const REAL *panel = wp + q * n_in * PW;
        int64_t width = n_out - q * PW < PW ? n_out - q * PW : PW;
        for (int64_t j0 = j_lo; j0 < j_hi; j0 += PANEL_BLOCK) {
            int64_t j1 = j0 + PANEL_BLOCK < j_hi ? j0 + PANEL_BLOCK : j_hi;
            for (int64_t c = 0; c < width; c++) {
                REAL *row = w + (q * PW + c) * n_in;
                for (int64_t j = j0; j < j1; j++) row[j] = panel[j * PW + c];
            }
        }
    }
}
#undef PANEL_BLOCK

/* Panel of W itself for the backward pass: panel[o][jj] = W[o][j0 + jj] (o < n_out). */
ENG_INLINE TARGET void VFN(pack_panel_of_w)(const REAL *wp, int64_t n_in, int64_t n_out,
                                            int64_t j0, int64_t width, REAL *panel) {
    for (int64_t o = 0; o < n_out; o++)
        for (int64_t j = 0; j < PW; j++)
            panel[o * PW + j] = j < width ? *PANEL_AT(wp, n_in, o, j0 + j) : (REAL)0;
}

ENG_INLINE TARGET REAL VFN(lane_sum)(VEC v) {
    REAL s = 0;
    for (int q = 0; q < VLEN; q++) s += v[q];
    return s;
}

/* c[i][j0 + o] = sum_p a[i][p] * wtail[o * k + p] for i < m, o < w: the outputs of a
   narrow last panel (wtail: their rows of W, TAIL_MAX of them, zero past w), as dot
   products along p, VLEN inputs at a time, for 4 rows at once. */
TARGET static void VFN(gemm_nn_tail)(const REAL *const *a, int64_t m, int64_t k,
                                     const REAL *wtail, int w, int64_t j0, REAL *const *c) {
    const int64_t kv = k / VLEN * VLEN;
    for (int64_t i0 = 0; i0 < m; i0 += 4) {
        const REAL *ar[4];
        VEC acc[4][TAIL_MAX], x[4], wv;
        for (int r = 0; r < 4; r++) {
            ar[r] = a[i0 + r < m ? i0 + r : m - 1];
            for (int o = 0; o < TAIL_MAX; o++) VZERO(acc[r][o]);
        }
        for (int64_t p = 0; p < kv; p += VLEN) {
            for (int r = 0; r < 4; r++) VLOAD(x[r], ar[r] + p);
            for (int o = 0; o < TAIL_MAX; o++) {
                VLOAD(wv, wtail + o * k + p);
                for (int r = 0; r < 4; r++) acc[r][o] += x[r] * wv;
            }
        }
        for (int r = 0; r < 4 && i0 + r < m; r++)
            for (int o = 0; o < w; o++) {
                REAL s = VFN(lane_sum)(acc[r][o]);
                for (int64_t p = kv; p < k; p++) s += ar[r][p] * wtail[o * k + p];
                c[i0 + r][j0 + o] = s;
            }
    }
}

/* c[i][j] = sum_p a[i][p] * B[p][j] for i < m, j < n, p < k, where B is
   - b (k rows of n), packed panel by panel into scratch (k * PW REALs), or
   - wp, a layer's weights (n_in = k, n_out = n) in the panel layout above: W^T, or
   - with w_transposed, (W^T)^T = W from that layout (n_out = k, n_in = n). */
TARGET static void VFN(gemm_nn)(const REAL *const *a, int64_t m, int64_t k,
                                const REAL *const *b, const REAL *wp, int w_transposed,
                                int64_t n, REAL *const *c, REAL *scratch) {
    REAL tile[MR * PW];
    if (m <= 0) return;
    for (int64_t j0 = 0; j0 < n; j0 += PW) {
        int64_t width = n - j0 < PW ? n - j0 : PW;
        const REAL *panel = scratch;
        if (wp == NULL)
            VFN(pack_panel)(b, j0, width, k, scratch);
        else if (w_transposed)
            VFN(pack_panel_of_w)(wp, n, k, j0, width, scratch);
        else if (width <= TAIL_MAX) {
            VFN(gemm_nn_tail)(a, m, k, TAIL_AT(wp, n, k), (int)width, j0, c);
            continue;
        } else
            panel = wp + j0 * k;
        for (int64_t i0 = 0; i0 < m; i0 += MR) {
            int64_t rows = m - i0 < MR ? m - i0 : MR;
            VFN(bcast_tile)(a, NULL, i0, m - 1, panel, k, width > VLEN ? 2 : 1, rows, tile);
            if (width == PW)        /* a constant size: inlined as two vector moves */
                for (int64_t r = 0; r < rows; r++)
                    memcpy(c[i0 + r] + j0, tile + r * PW, PW * sizeof(REAL));
            else
                for (int64_t r = 0; r < rows; r++)
                    memcpy(c[i0 + r] + j0, tile + r * PW, (size_t)width * sizeof(REAL));
        }
    }
}

/* Row p of d (n columns) into the panels of dp: panel q holds rows of
   d[p][q * PW ... q * PW + PW - 1], zero past n, its rows `stride` rows apart from the
   next panel's. gemm_tn_update reads a layer's deltas from there. */
TARGET static void VFN(pack_delta_row)(const REAL *d, int64_t n, int64_t p, int64_t stride,
                                       REAL *dp) {
    for (int64_t q0 = 0; q0 < n; q0 += PW) {
        REAL *dst = dp + (q0 / PW * stride + p) * PW;
        int64_t width = n - q0 < PW ? n - q0 : PW;
        memcpy(dst, d + q0, (size_t)width * sizeof(REAL));
        for (int64_t j = width; j < PW; j++) dst[j] = (REAL)0;
    }
}

/* bf16-mixed: n weights rounded to bfloat16 (bf16.h's to_bf16) into r; inline, in this
   variant's vectors: a call to eng_bf16_round per tile of steps cost the deep network's
   32-unit layers about 4% of their epoch (AVX2 workers, Zen 4). Float only (the double
   instantiation never calls it). */
ENG_INLINE TARGET void VFN(round_into)(const REAL *w, REAL *r, int64_t n) {
    for (int64_t k = 0; k < n; k++) r[k] = (REAL)from_bf16(to_bf16((float)w[k]));
}

/* The step of input j's weights in the panel starting at output o0 (width of them, or
   of several inputs' when width runs past the panel's), from their gradient g; returns
   the sum of their squares when `squares` is asked for. rw (bf16-mixed, float only; else
   NULL): panels in the same layout that take the stepped weights rounded to bfloat16,
   while they are in cache (the copy the products read, epoch_tiles.h). */
ENG_INLINE TARGET REAL VFN(update_input)(REAL *wt, REAL *vt, REAL *st, REAL *rw, int64_t n_in,
                                         int64_t o0, int64_t j, const REAL *g, int64_t width,
                                         const FN(eng_step) *step, int squares) {
    REAL *w = PANEL_AT(wt, n_in, o0, j), sum = 0;
    VFN(update_range)(w, g, vt == NULL ? NULL : PANEL_AT(vt, n_in, o0, j),
                      st == NULL ? NULL : PANEL_AT(st, n_in, o0, j), width, step->kind,
                      step->lr, step->mom, step->b1, step->b2, step->eps, step->l2);
    if (rw != NULL) VFN(round_into)(w, PANEL_AT(rw, n_in, o0, j), width);
    if (squares)
        for (int64_t k = 0; k < width; k++) sum += w[k] * w[k];
    return sum;
}

/* g[jj * TAIL_MAX + o] = sum_p a[p][j + jj] * dpanel[p * PW + o] for jj < nv * VLEN,
   o < TAIL_MAX: a narrow last panel's gradient, vectors along the inputs. */
ENG_INLINE TARGET void VFN(tail_gradient)(const REAL *const *a, int64_t m, int64_t j,
                                          const REAL *dpanel, const int nv, REAL *g) {
    VEC acc[TAIL_MAX][4], x[4];
    for (int o = 0; o < TAIL_MAX; o++)
        for (int v = 0; v < nv; v++) VZERO(acc[o][v]);
    for (int64_t p = 0; p < m; p++) {
        for (int v = 0; v < nv; v++) VLOAD(x[v], a[p] + j + v * VLEN);
        for (int o = 0; o < TAIL_MAX; o++) {
            REAL dv = dpanel[p * PW + o];
            for (int v = 0; v < nv; v++) acc[o][v] += dv * x[v];
        }
    }
    for (int o = 0; o < TAIL_MAX; o++)
        for (int v = 0; v < nv; v++)
            for (int q = 0; q < VLEN; q++) g[(v * VLEN + q) * TAIL_MAX + o] = acc[o][v][q];
}

/* gemm_tn_update's narrow last panel (outputs o0 ... n_out - 1, at most TAIL_MAX): the
   gradient of inputs [j_lo, j_hi) 4 vectors of them at a time, then the step of each
   input's weights, which also go to the copy of these outputs' rows (TAIL_AT; rw's too). */
TARGET static void VFN(gemm_tn_tail)(const REAL *const *a, int64_t m, int64_t n_in,
                                     int64_t j_lo, int64_t j_hi, const REAL *dpanel,
                                     int64_t n_out, int64_t o0, REAL *wt, REAL *vt, REAL *st,
                                     REAL *rw, const FN(eng_step) *step, double *sq_parts) {
    REAL g[4 * VLEN * TAIL_MAX];
    REAL *tail = TAIL_AT(wt, n_out, n_in);
    REAL *rtail = rw == NULL ? NULL : TAIL_AT(rw, n_out, n_in);
    const int64_t width = n_out - o0;
    for (int64_t j = j_lo; j < j_hi;) {
        int64_t n = j_hi - j >= 4 * VLEN ? 4 * VLEN : j_hi - j >= VLEN ? VLEN : 1;
        if (n == 4 * VLEN)
            VFN(tail_gradient)(a, m, j, dpanel, 4, g);
        else if (n == VLEN)
            VFN(tail_gradient)(a, m, j, dpanel, 1, g);
        else
            for (int o = 0; o < TAIL_MAX; o++) {
                REAL s = 0;
                for (int64_t p = 0; p < m; p++) s += a[p][j] * dpanel[p * PW + o];
                g[o] = s;
            }
        for (int64_t jj = 0; jj < n; jj++, j++) {
            REAL squares = VFN(update_input)(wt, vt, st, rw, n_in, o0, j,
                                             g + jj * TAIL_MAX, width, step, sq_parts != NULL);
            const REAL *w = PANEL_AT(wt, n_in, o0, j);
            for (int64_t o = 0; o < width; o++) tail[o * n_in + j] = w[o];
            if (rtail != NULL)
                for (int64_t o = 0; o < width; o++)
                    rtail[o * n_in + j] = *PANEL_AT(rw, n_in, o0 + o, j);
            if (sq_parts != NULL) {
                double *part = &sq_parts[j / MR];
                *part = (o0 == 0 && j % MR == 0 ? 0.0 : *part) + (double)squares;
            }
        }
    }
}

/* The optimizer step of a layer's weights wp (panel layout above), inputs [j_lo, j_hi),
   with the gradient formed tile by tile and never stored: g[j][o] = sum_p a[p][j] * d[p][o]
   over the minibatch (p < m; a: the layer's n_in-wide input rows, d: its delta rows, read
   from dp, where pack_delta_row put them), then
   applied at once by `step` (state vt, st in the same layout, as the rule needs them).
   With sq_parts, sq_parts[j0 / MR] becomes the sum of squares of the updated weights of
   the inputs of tile j0 (j_lo is a multiple of MR): the L2 term of the next minibatch's
   loss, formed while the weights are in registers, in the same order for any thread count.
   scratch: (j_hi - j_lo rounded up to MR) * m REALs. rw: see update_input. */
TARGET static void VFN(gemm_tn_update)(const REAL *const *a, int64_t m, int64_t n_in,
                                       int64_t j_lo, int64_t j_hi, const REAL *dp,
                                       int64_t stride, int64_t n_out, REAL *wt, REAL *vt,
                                       REAL *st, REAL *rw, const FN(eng_step) *step,
                                       double *sq_parts, REAL *scratch) {
    REAL tile[MR * PW];
    REAL *packed = scratch;
    if (m <= 0 || j_lo >= j_hi) return;
    VFN(pack_columns)(a, m, j_lo, j_hi, packed);
    for (int64_t o0 = 0; o0 < n_out; o0 += PW) {
        int64_t width = n_out - o0 < PW ? n_out - o0 : PW;
        const REAL *panel = dp + o0 / PW * stride * PW;
        if (width <= TAIL_MAX) {
            VFN(gemm_tn_tail)(a, m, n_in, j_lo, j_hi, panel, n_out, o0, wt, vt, st, rw,
                              step, sq_parts);
            continue;
        }
        for (int64_t j0 = j_lo; j0 < j_hi; j0 += MR) {
            int64_t rows = j_hi - j0 < MR ? j_hi - j0 : MR;
            VFN(bcast_tile)(NULL, packed + (j0 - j_lo) * m, 0, 0, panel, m,
                            width > VLEN ? 2 : 1, rows, tile);
            REAL squares = 0;
            if (width == PW)    /* a full panel's rows of a tile lie end to end: one step */
                squares = VFN(update_input)(wt, vt, st, rw, n_in, o0, j0, tile, rows * PW,
                                            step, sq_parts != NULL);
            else
                for (int64_t r = 0; r < rows; r++)
                    squares += VFN(update_input)(wt, vt, st, rw, n_in, o0, j0 + r,
                                                 tile + r * PW, width, step, sq_parts != NULL);
            if (sq_parts != NULL)
                sq_parts[j0 / MR] = (o0 == 0 ? 0.0 : sq_parts[j0 / MR]) + (double)squares;
        }
    }
}

/* The stored-gradient mode's step of inputs [j_lo, j_hi) of a layer kept in panels (wt,
   state vt, st), from its gradient g in W's own layout (n_out x n_in): each input's
   slice of a panel steps at once, as gemm_tn_update steps it, and the narrow tail's copy
   of W follows (rw: see update_input). */
TARGET static void VFN(panel_step)(REAL *wt, REAL *vt, REAL *st, REAL *rw, const REAL *g,
                                   int64_t n_out, int64_t n_in, int64_t j_lo, int64_t j_hi,
                                   const FN(eng_step) *step) {
    REAL col[PW];
    const int tail = VFN(narrow_tail)(n_out);
    REAL *copy = TAIL_AT(wt, n_out, n_in);
    REAL *rcopy = rw == NULL ? NULL : TAIL_AT(rw, n_out, n_in);
    for (int64_t o0 = 0; o0 < n_out; o0 += PW) {
        int64_t width = n_out - o0 < PW ? n_out - o0 : PW;
        for (int64_t j = j_lo; j < j_hi; j++) {
            for (int64_t c = 0; c < width; c++) col[c] = g[(o0 + c) * n_in + j];
            VFN(update_input)(wt, vt, st, rw, n_in, o0, j, col, width, step, 0);
        }
    }
    for (int64_t o = 0; o < tail; o++)
        for (int64_t j = j_lo; j < j_hi; j++) {
            copy[o * n_in + j] = *PANEL_AT(wt, n_in, n_out - tail + o, j);
            if (rcopy != NULL) rcopy[o * n_in + j] = *PANEL_AT(rw, n_in, n_out - tail + o, j);
        }
}

#undef PANEL_AT
#undef TAIL_AT
#undef TAIL_MAX
#undef VZERO
#undef VLOAD
#undef VSTORE
