# The epoch on BLAS products: for networks wider than the tiles pay for, for the
# diagnostics (which need each gradient formed) and, with its operands rounded to bfloat16,
# for bf16-mixed training where the CPU has no bf16 products of its own; and the
# benchmarks' GEMM floor, its products alone.


cdef inline void _round_bf16(real *src, real *dst, int64_t n) noexcept nogil:
    if real is float:
        eng_bf16_round(src, dst, n)


cdef int64_t _blas_epoch(EpochPlan plan, const real *X, const int64_t *y, const void *T,
                      const real *SW, const int64_t *order, int64_t count,
                      const eng_rule *rule, double alpha, double *losses,
                      double *grad_norms) noexcept nogil:
    # returns the minibatches trained (fewer when a stop is requested between two)
    cdef const eng_kernel_table *k = plan.k
    cdef eng_epoch_plan *p = &plan.p
    cdef int L = p.n_layers, l, m
    cdef int *s = plan.sizes
    cdef int64_t start = 0, i = 0, size
    cdef real *x = <real*>plan.x
    cdef real *t = <real*>plan.t
    cdef real **W = <real**>p.W
    cdef real **A = <real**>p.A
    cdef real **D = <real**>p.D
    cdef void **SL = p.SL        # kept slopes (csrc/ops.h ENG_SLOPE_OPS), or NULL
    cdef real **GW = <real**>plan.GW
    cdef real **VW = <real**>p.VW
    cdef void *vb
    cdef void *sw
    cdef void *sb
    cdef const real *inp
    cdef const void *slopes
    cdef eng_rule now = rule[0]
    cdef real lr, mom
    cdef real *wb = <real*>plan.wb if SW != NULL else NULL
    cdef double squares = 0.0, weight, raw
    cdef int r
    cdef bint failed = False
    cdef uint32_t key
    cdef const double *rates = p.dropout
    # bf16 (float32 plans only): the products read rounded copies, everything else the
    # float32 arrays (engine/precision.py)
    cdef bint bf16 = plan.bf16
    cdef real **RA = <real**>plan.RA
    cdef real **RD = <real**>plan.RD
    cdef real **PW = <real**>plan.RW if bf16 else W     # the weights the products read
    cdef real *dl
    # plain SGD and momentum without L2 fold the update into the gradient GEMM; every other
    # step forms the gradient, then applies the rule to it
    cdef bint folded = ((rule.kind == ENG_SGD or rule.kind == ENG_MOMENTUM) and alpha == 0
                        and not plan.reducing)
    while start < count and not eng_stop_requested():
        m = <int>min(p.batch, count - start)
        now.t = rule.t + i + 1
        lr = <real>eng_rule_step_size(&now)
        mom = <real>now.momentum
        weight = m
        raw = m
        key = eng_dropout_key(p.dropout_key, i)
        if y != NULL:
            k.gather(X, y, order + start, m, s[0], s[L], x, t)
        else:
            k.gather_rows(X, T, order + start, m, s[0], s[L], x, t)
        if wb != NULL:
            weight = 0.0
            for r in range(m):
                wb[r] = SW[order[start + r]]
                weight += wb[r]
            raw = weight              # what the rows weigh (for reduce)
            if weight <= 0:
                weight = 1.0          # all zero: a step with a zero gradient
        if start + m < count:     # the next rows load while BLAS computes this minibatch
            k.prefetch_rows(X, order + start + m, <int>min(p.batch, count - start - m), s[0])
        if bf16:
            _round_bf16(x, x, <int64_t>m * s[0])
            for l in range(L):
                _round_bf16(W[l], PW[l], <int64_t>s[l + 1] * s[l])
        # forward: A[l] = act(inp @ W[l]^T + B[l])
        inp = x
        for l in range(L):
            gemm_rm(False, True, m, s[l + 1], s[l], <real>1, inp, s[l], PW[l], s[l],
                    <real>0, A[l], s[l + 1])
            k.bias_act(A[l], p.B[l], m, s[l + 1], plan.acts[l],
                       SL[l] if SL != NULL else NULL)
            if rates != NULL and l < L - 1 and rates[l] > 0:
                k.dropout(A[l], m, s[l + 1], 0, key, l, rates[l])
            inp = A[l]
            if bf16 and l < L - 1:
                _round_bf16(A[l], RA[l], <int64_t>m * s[l + 1])
                inp = RA[l]
        losses[i] = k.loss(A[L - 1], t, m, s[L], p.loss_kind, wb)
        if alpha > 0:
            squares = 0.0
            for l in range(L):
                squares += k.sq_norm(W[l], <int64_t>s[l + 1] * s[l])
            if not plan.reducing:     # reducing: added with the reduced weight below
                losses[i] += 0.5 * alpha * squares / weight
        k.output_delta(A[L - 1], t, D[L - 1], m, s[L], p.loss_kind, wb)
        # backward, updating each layer once the delta below it has used its weights
        for l in range(L - 1, -1, -1):
            inp = x if l == 0 else (RA[l - 1] if bf16 else A[l - 1])
            dl = D[l]
            if bf16:
                _round_bf16(D[l], RD[l], <int64_t>m * s[l + 1])
                dl = RD[l]
            size = <int64_t>s[l + 1] * s[l]
            vb = p.VB[l] if p.VB != NULL else NULL
            sw = p.MW[l] if p.MW != NULL else NULL
            sb = p.MB[l] if p.MB != NULL else NULL
            if l > 0:
                gemm_rm(False, False, m, s[l], s[l + 1], <real>1, dl, s[l + 1], PW[l], s[l],
                        <real>0, D[l - 1], s[l])
                # the derivative reads the outputs, or the slopes kept for it
                slopes = SL[l - 1] if SL != NULL and SL[l - 1] != NULL else A[l - 1]
                if rates != NULL and rates[l - 1] > 0:
                    k.dropout_backward(D[l - 1], slopes, m, s[l], 0, key, l - 1,
                                       rates[l - 1], plan.acts[l - 1])
                else:
                    k.act_backward(D[l - 1], slopes, <int64_t>m * s[l], plan.acts[l - 1])
            k.bias_grad(D[l], p.GB[l], m, s[l + 1])
            if grad_norms != NULL or not folded:
                # form the gradient (and measure it for the diagnostics), then apply it
                gemm_rm(True, False, s[l + 1], s[l], m, <real>1, dl, s[l + 1], inp, s[l],
                        <real>0, GW[l], s[l])
                if grad_norms != NULL:
                    grad_norms[l] += sqrt(k.sq_norm(GW[l], size))
                if not plan.reducing:
                    k.optimizer_step(W[l], GW[l], VW[l] if VW != NULL else NULL, sw, size,
                                     &now, alpha / weight)
                    k.optimizer_step(p.B[l], p.GB[l], vb, sb, s[l + 1], &now, 0.0)
            elif VW != NULL and rule.kind == ENG_MOMENTUM:
                # VW = mom * VW - lr * D^T inp; W += VW
                gemm_rm(True, False, s[l + 1], s[l], m, -lr, dl, s[l + 1], inp, s[l],
                        mom, VW[l], s[l])
                k.axpy(W[l], VW[l], size, 1.0)
                k.sgd_step(p.B[l], p.GB[l], vb, s[l + 1], lr, mom)
            else:
                # W -= lr * D^T inp, straight into the weights
                gemm_rm(True, False, s[l + 1], s[l], m, -lr, dl, s[l + 1], inp, s[l],
                        <real>1, W[l], s[l])
                k.axpy(p.B[l], p.GB[l], s[l + 1], -lr)
        if plan.reducing:
            # every gradient formed, no weight touched yet: reduce, then step every layer
            with gil:
                try:
                    losses[i], weight = plan._reduce(i, losses[i], raw, plan._reduce_grads)
                except BaseException as exc:
                    plan._reduce_error = exc
                    failed = True
            if failed:
                break
            if alpha > 0:
                losses[i] += 0.5 * alpha * squares / weight
            for l in range(L):
                k.optimizer_step(W[l], GW[l], VW[l] if VW != NULL else NULL,
                                 p.MW[l] if p.MW != NULL else NULL,
                                 <int64_t>s[l + 1] * s[l], &now, alpha / weight)
                k.optimizer_step(p.B[l], p.GB[l], p.VB[l] if p.VB != NULL else NULL,
                                 p.MB[l] if p.MB != NULL else NULL, s[l + 1], &now, 0.0)
        start += m
        i += 1
    return i


cdef int64_t _gemm_floor(EpochPlan plan, real lr, int64_t count) noexcept nogil:
    # _blas_epoch's products for plain SGD (update folded into the gradient GEMM), and
    # nothing else: on whatever the plan's buffers hold
    cdef eng_epoch_plan *p = &plan.p
    cdef int L = p.n_layers, l, m
    cdef int *s = plan.sizes
    cdef int64_t start = 0, i = 0
    cdef real *x = <real*>plan.x
    cdef real **W = <real**>p.W
    cdef real **A = <real**>p.A
    cdef real **D = <real**>p.D
    cdef const real *inp
    while start < count:
        m = <int>min(p.batch, count - start)
        inp = x
        for l in range(L):
            gemm_rm(False, True, m, s[l + 1], s[l], <real>1, inp, s[l], W[l], s[l],
                    <real>0, A[l], s[l + 1])
            inp = A[l]
        for l in range(L - 1, -1, -1):
            inp = x if l == 0 else A[l - 1]
            if l > 0:
                gemm_rm(False, False, m, s[l], s[l + 1], <real>1, D[l], s[l + 1], W[l], s[l],
                        <real>0, D[l - 1], s[l])
            gemm_rm(True, False, s[l + 1], s[l], m, -lr, D[l], s[l + 1], inp, s[l],
                    <real>1, W[l], s[l])
        start += m
        i += 1
    return i
