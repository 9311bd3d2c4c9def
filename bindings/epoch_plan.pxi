# EpochPlan: a network's parameters and a workspace's buffers, gathered once as C pointers,
# then a whole epoch per `run` call, its products on the tiles or from BLAS (csrc/epoch.h).

cdef inline size_t _round64(size_t n) noexcept nogil:
    return (n + 63) // 64 * 64


cdef int _reduce_hook(void *ctx, int64_t i, double *loss, double *weight) noexcept nogil:
    # the tiled epoch's thread 0 (the thread that called run) between a minibatch's
    # gradients and its step: the plan's reduce callable, under the GIL
    with gil:
        plan = <EpochPlan>ctx
        try:
            loss[0], weight[0] = plan._reduce(i, loss[0], weight[0], plan._reduce_grads)
        except BaseException as exc:
            plan._reduce_error = exc
            return 1
    return 0


cdef class EpochPlan:
    """Pointers to a network's parameters and a workspace's buffers, gathered once.

    `run` then trains a whole epoch in C: per minibatch forward, loss, output delta,
    backward and the SGD update of every layer, with the GIL released and nothing
    allocated, by one C driver (eng_fused_epoch) whose products come from `gemm`:

    - "tiles": csrc's own small-matrix GEMM, no BLAS; the minibatch is split between the
      epoch's threads (engine._native.set_epoch_threads), rows in the forward and backward
      pass, weight columns in the update, and each weight gradient is applied tile by tile
      as it is formed;
    - "blas": SciPy's BLAS on whole minibatches (its gemm handed to the driver), with the
      update folded into the gradient GEMM (W += -lr * delta^T A, or the velocity with
      beta = momentum) where the step allows;
    - "auto" (default): tiles unless a layer has more than TILES_MAX_WIDTH units, where BLAS's
      packed, cache-blocked kernels win.

    `threads` caps the tiled epoch's team for this plan (0: the process setting,
    set_epoch_threads). The diagnostics (grad_norms) always take the BLAS path;
    gemm_floor, for the benchmarks, makes the BLAS path's products alone. bf16=True
    (float32 only) rounds every product's operands to bfloat16 first, the rest staying
    float32: bf16-mixed training as engine/precision.py specifies it, on the BLAS path, or on
    the tiles when gemm="tiles" is asked for by name; there X must come rounded already
    (engine.precision.round_bf16: the caller's copy, made once per fit). The
    arrays given here must stay where they are while the plan is used; the plan keeps
    references to them.
    """
    # Every C pointer lives in `p` (what the fused epoch reads) or beside it (GW), all
    # carved out of one block: one allocation (_alloc), one release (_release).
    cdef eng_epoch_plan p
    cdef void *block
    cdef int *sizes
    cdef int *acts
    cdef void **GW
    # bf16: every product's operands are rounded to bfloat16 first, into p.RW, p.RA, p.RD
    cdef readonly bint bf16
    cdef int n_layers, has_velocity, has_second
    cdef const eng_kernel_table *k
    cdef list _keep
    cdef readonly object dtype
    cdef readonly str gemm
    # run(reduce=...): the callable between each minibatch's gradients and its step
    cdef object _reduce
    cdef object _reduce_error
    cdef list _reduce_grads    # what the callable may rewrite: this path's gradient arrays
    cdef list _grads           # the weight and bias gradients given
    # set while run() trains: a re-initialisation (from another thread, or from inside the
    # reduce callback) would free the block the running epoch reads, so both are refused
    cdef bint running

    def __cinit__(self):
        self.block = NULL
        self._clear()

    cdef _clear(self):
        memset(&self.p, 0, sizeof(eng_epoch_plan))
        self.sizes = self.acts = NULL
        self.GW = NULL
        self.bf16 = False
        self.n_layers = 0
        self.k = NULL

    cdef _release(self):
        free(self.block)
        self.block = NULL
        self._clear()

    def __dealloc__(self):
        free(self.block)

    cdef _alloc(self, int L, int64_t batch, int threads, int64_t per_thread, int64_t n_parts,
                int64_t delta_panels):
        """Room for every pointer array, the row pointers, row losses, the tiles' delta
        panels and thread scratch."""
        cdef size_t n_rows = <size_t>eng_epoch_row_count(L, batch)
        cdef size_t ints = _round64((2 * L + 1) * sizeof(int))
        cdef size_t ptrs = _round64((15 * <size_t>L + n_rows) * sizeof(void*))
        # row losses, then the L2 parts (at most one per 8 outputs of every layer)
        cdef size_t doubles = _round64((batch + n_parts) * sizeof(double))
        cdef size_t panels = _round64(<size_t>delta_panels)
        cdef size_t scratch = <size_t>threads * <size_t>per_thread
        cdef size_t total = ints + ptrs + doubles + panels + scratch
        self._release()
        self.block = calloc(total + 64, 1)
        if self.block == NULL:
            raise MemoryError(f"EpochPlan: cannot allocate {total} bytes")
        cdef char *base = <char*>self.block + (64 - <size_t>self.block % 64) % 64
        cdef void **v = <void**>(base + ints)
        self.sizes, self.acts = <int*>base, <int*>base + L + 1
        self.p.W, self.p.B, self.p.A, self.p.D = v, v + L, v + 2 * L, v + 3 * L
        self.p.GB, self.GW, self.p.VW, self.p.VB = v + 4 * L, v + 5 * L, v + 6 * L, v + 7 * L
        self.p.MW, self.p.MB = v + 8 * L, v + 9 * L
        self.p.WT, self.p.VT, self.p.ST = v + 10 * L, v + 11 * L, v + 12 * L
        self.p.GT, self.p.GW = v + 13 * L, self.GW
        self.p.SL = v + 14 * L
        self.p.rows = v + 15 * L
        self.p.row_loss = <double*>(base + ints + ptrs)
        self.p.l2_parts = self.p.row_loss + batch
        self.p.delta_panels = base + ints + ptrs + doubles if panels else NULL
        self.p.scratch = base + ints + ptrs + doubles + panels if scratch else NULL
        self.p.scratch_per_thread = per_thread
        self.p.threads = threads
        self.p.team = 0
        self.p.sizes, self.p.acts = self.sizes, self.acts
        self.p.n_layers, self.p.batch = L, batch

    def __init__(self, weights, biases, acts, deltas, bias_grads, x, activations,
                 str loss, velocities=None, weight_grads=None, str gemm="auto",
                 int threads=0, second_moments=None, bint bf16=False, slopes=None):
        cdef int L = len(weights), l
        if self.running:
            raise RuntimeError("this EpochPlan is running an epoch; it cannot be "
                               "re-initialized until run() returns")
        self._release()     # a failed re-init leaves a plan that refuses to run
        if L < 1:
            raise ValueError("weights must hold at least one matrix")
        for name, seq in (("biases", biases), ("acts", acts), ("deltas", deltas),
                          ("bias_grads", bias_grads), ("activations", activations)):
            if len(seq) != L:
                raise ValueError(f"{name} must have {L} entries (one per layer); got {len(seq)}")
        for name, seq in (("velocities", velocities), ("second_moments", second_moments)):
            if seq is not None and len(seq) != 2 * L:
                raise ValueError(f"{name} must have {2 * L} entries (weights, then biases); "
                                 f"got {len(seq)}")
        if second_moments is not None and velocities is None:
            raise ValueError("second_moments (Adam) need velocities (its first moments) too")
        if slopes is not None and len(slopes) != L:
            raise ValueError(f"slopes must have {L} entries; got {len(slopes)}")
        if weight_grads is not None and len(weight_grads) != L:
            raise ValueError(f"weight_grads must have {L} entries; got {len(weight_grads)}")
        cdef cnp.ndarray w0 = _array("weights[0]", weights[0], 2)
        dtype = w0.dtype
        cdef cnp.ndarray X0 = _array("x", x, 2, dtype, True)
        cdef int64_t batch = X0.shape[0]
        if batch < 1:
            raise ValueError("x must have at least one row (its rows are the batch size); "
                             "got 0")
        sizes = [w0.shape[1]] + [np.shape(w)[0] if np.ndim(w) == 2 else 0 for w in weights]
        if bf16 and dtype != _F32:
            raise TypeError(f"bf16 rounds float32 operands; these arrays are {dtype}")
        # bf16 on the tiles only when asked for by name: X must come rounded there
        gemm = "tiles" if tiles_chosen(sizes, gemm) and (gemm == "tiles" or not bf16) \
            else "blas"
        if gemm == "tiles" and L > ENG_MAX_LAYERS:
            raise ValueError(f"the tiled epoch takes at most {ENG_MAX_LAYERS} layers; got {L} "
                             f"(use gemm='blas')")
        if threads < 0 or threads > ENG_MAX_EPOCH_THREADS:
            raise ValueError(f"threads must lie in [0, {ENG_MAX_EPOCH_THREADS}] (0: the process "
                             f"setting); got {threads}")
        cdef int team = threads
        # room in the scratch for the team asked for, or for the process setting now (a
        # team never has more threads than the batch has rows)
        threads = (threads or max(eng_get_epoch_threads(), 1)) if gemm == "tiles" else 0
        threads = min(threads, batch)
        cdef cnp.ndarray widths = np.array(sizes, dtype=np.intc)
        self._alloc(L, batch, threads,
                    eng_epoch_scratch_bytes(L, batch, <int*>_ptr(widths)) if threads else 0,
                    eng_epoch_l2_parts(L, <int*>_ptr(widths)),
                    eng_epoch_delta_panel_bytes(L, batch, <int*>_ptr(widths)) if threads
                    else 0)
        keep = [x]
        gw_arrays, gb_arrays = [], []
        cdef bint vel = velocities is not None
        cdef bint second = second_moments is not None
        cdef cnp.ndarray arr
        has_slopes = False
        self.sizes[0] = w0.shape[1]
        for l in range(L):
            arr = _array(f"weights[{l}]", weights[l], 2, dtype, True)
            if arr.shape[1] != self.sizes[l]:
                raise ValueError(f"weights[{l}] has {arr.shape[1]} inputs but the previous "
                                 f"layer has {self.sizes[l]} outputs")
            self.sizes[l + 1] = arr.shape[0]
            keep.append(arr)
            self.p.W[l] = _ptr(arr)
            out = (self.sizes[l + 1],)
            rows = (batch, self.sizes[l + 1])
            self.p.B[l] = _ptr(_checked(f"biases[{l}]", biases[l], dtype, out, keep))
            gb_arrays.append(_checked(f"bias_grads[{l}]", bias_grads[l], dtype, out, keep))
            self.p.GB[l] = _ptr(gb_arrays[l])
            self.p.A[l] = _ptr(_checked(f"acts[{l}]", acts[l], dtype, rows, keep))
            self.p.D[l] = _ptr(_checked(f"deltas[{l}]", deltas[l], dtype, rows, keep))
            self.acts[l] = _act(activations[l], l == L - 1)
            self.p.SL[l] = _slope_ptr(slopes, l, L, activations[l], dtype, rows, keep)
            has_slopes = has_slopes or self.p.SL[l] != NULL
            if weight_grads is not None:
                gw_arrays.append(_checked(f"weight_grads[{l}]", weight_grads[l], dtype,
                                          _dims(arr), keep))
                self.GW[l] = _ptr(gw_arrays[l])
            if vel:
                self.p.VW[l] = _ptr(_checked(f"velocities[{l}]", velocities[l], dtype,
                                             _dims(arr), keep))
                self.p.VB[l] = _ptr(_checked(f"velocities[{L + l}]", velocities[L + l], dtype,
                                             out, keep))
            if second:
                self.p.MW[l] = _ptr(_checked(f"second_moments[{l}]", second_moments[l], dtype,
                                             _dims(arr), keep))
                self.p.MB[l] = _ptr(_checked(f"second_moments[{L + l}]", second_moments[L + l],
                                             dtype, out, keep))
        _shape("x", X0, (batch, self.sizes[0]))
        self.p.x = _ptr(X0)
        self.p.loss_kind = _pair(activations[L - 1], loss)
        if gemm == "tiles":
            self._init_tiles(L, dtype, vel, second, weight_grads is not None, keep)
            self.p.team = team
        if not has_slopes:
            self.p.SL = NULL
        if not vel:
            self.p.VW = self.p.VB = self.p.VT = NULL
        if not second:
            self.p.MW = self.p.MB = self.p.ST = NULL
        if bf16:
            self._init_bf16(L, batch, keep, gemm == "tiles")
        self._grads = gw_arrays + gb_arrays if weight_grads is not None else None
        self._keep, self.dtype, self.gemm = keep, dtype, gemm
        self.n_layers, self.has_velocity, self.has_second = L, vel, second
        self.k = _table(w0)

    cdef _init_bf16(self, int L, int64_t batch, list keep, bint tiles):
        """The rounded copies the bf16 products read: W (in panels on the tiles), and A
        and D of a minibatch."""
        holders = [np.zeros(L, dtype=np.uintp) for _ in range(3)]
        keep.extend(holders)
        for l in range(L):
            w_shape = (self.sizes[l + 1], self.sizes[l])
            if tiles:
                w_shape = (int(eng_epoch_panel_elements(self.sizes[l + 1], self.sizes[l], 4)),)
            shapes = (w_shape, (batch, self.sizes[l + 1]), (batch, self.sizes[l + 1]))
            for holder, shape in zip(holders, shapes):
                keep.append(np.zeros(shape, dtype=_F32))
                holder[l] = <size_t>_ptr(keep[len(keep) - 1])
        self.p.RW = <void**>_ptr(holders[0])
        self.p.RA = <void**>_ptr(holders[1])
        self.p.RD = <void**>_ptr(holders[2])
        self.bf16 = True

    cdef _init_tiles(self, int L, object dtype, bint vel, bint second, bint grads, list keep):
        """The epoch's own copies of W (and of its optimizer state) in panels; with grads,
        room for the gradient tiles too (the stored-gradient mode of reduce)."""
        cdef int l
        for l in range(L):
            wt = np.zeros(eng_epoch_panel_elements(self.sizes[l + 1], self.sizes[l],
                                                   dtype.itemsize), dtype=dtype)
            keep.append(wt)
            self.p.WT[l] = _ptr(wt)
            if vel:
                keep.append(np.zeros_like(wt))
                self.p.VT[l] = _ptr(keep[len(keep) - 1])
            if second:
                keep.append(np.zeros_like(wt))
                self.p.ST[l] = _ptr(keep[len(keep) - 1])
            if grads:
                keep.append(np.zeros_like(wt))
                self.p.GT[l] = _ptr(keep[len(keep) - 1])

    def run(self, X, y, order, rule, batch_losses, grad_norms=None, *, double alpha=0.0,
            sample_weight=None, dropout=None, dropout_key=0, reduce=None):
        """Train one epoch over X[order] (minibatches of the plan's batch size, the last
        one possibly shorter) with the optimizer step `rule` (an engine.optimizers.StepRule,
        t = the steps taken before this epoch); batch_losses[i] receives minibatch i's loss
        before its update.

        Returns the minibatches trained: all of them, unless a stop was requested
        (request_stop, or Ctrl-C under install_interrupt_handler) in between.
        grad_norms (float64, one per layer): each minibatch's |dL/dW| is added to it; the
        gradient is then formed in weight_grads before the update instead of being folded
        into it (the plan must have been built with weight_grads).
        alpha is the L2 penalty (loss += alpha/2 |W|^2 / m, gradient += alpha W / m, biases exempt).
        sample_weight (n,): each minibatch's loss and gradient become the weighted means
        sum(w_i loss_i) / sum(w_i), and m above becomes sum(w_i). dropout: per layer, the
        drop rate of its outputs (the last layer's must be 0), masks keyed by dropout_key
        (the epoch's, a uint64) and each minibatch's number (csrc/runtime.h).
        reduce (a plan built with weight_grads; either product path): after each
        minibatch's gradients are formed, and before any step, reduce(i, loss, weight,
        grads) is called with the minibatch's loss (without its L2 term), its rows (or
        sample-weight sum, 0 when they are all 0) and the gradients (weight_grads, then
        bias_grads; on the tiles formed in their stored-gradient mode, csrc/epoch.h). It
        may rewrite them in place, and returns (loss, weight) to step with: data-parallel
        training sums the ranks' gradients there (engine/distributed.py). It runs on the
        calling thread (the tiles' team waits); an exception it raises ends the epoch and
        is raised here."""
        if self.n_layers == 0:
            raise RuntimeError("this EpochPlan was never initialized successfully")
        if self.running:
            raise RuntimeError("this EpochPlan is already running an epoch (in another "
                               "thread, or this is its reduce callback)")
        cdef cnp.ndarray XA = _array("X", X, 2, self.dtype)
        cdef cnp.ndarray Y = _targets("y", y, XA.shape[0], self.sizes[self.n_layers], self.dtype)
        cdef cnp.ndarray O = _array("order", order, 1, _INT64)
        cdef cnp.ndarray BL = _array("batch_losses", batch_losses, 1, np.dtype(np.float64), True)
        cdef int64_t n = XA.shape[0], count = O.shape[0]
        cdef cnp.ndarray SW = _weights("sample_weight", sample_weight, XA.shape[0], self.dtype)
        cdef cnp.ndarray DR = None
        if dropout is not None:
            DR = _array("dropout", dropout, 1, np.dtype(np.float64))
            _shape("dropout", DR, (self.n_layers,))
            if not all(0.0 <= r < 1.0 for r in DR) or DR[self.n_layers - 1] != 0:
                raise ValueError("dropout rates must lie in [0, 1), and be 0 for the output "
                                 f"layer; got {list(DR)}")
        self.p.dropout = <double*>_ptr(DR) if DR is not None else NULL
        self.p.dropout_key = <uint64_t>dropout_key
        cdef void *psw = _ptr(SW) if SW is not None else NULL
        cdef int64_t n_batches = (count + self.p.batch - 1) // self.p.batch
        if XA.shape[1] != self.sizes[0]:
            raise ValueError(f"X must have {self.sizes[0]} columns; got shape {_dims(XA)}")
        if BL.shape[0] < n_batches:
            raise ValueError(f"batch_losses needs {n_batches} entries; got {BL.shape[0]}")
        cdef eng_rule r = _rule(rule)
        if r.kind != ENG_SGD and not self.has_velocity:
            raise ValueError(f"a {rule.kind} step needs velocities; this plan was built "
                             f"without velocities")
        if r.kind == ENG_ADAM and not self.has_second:
            raise ValueError("an adam step needs a plan built with second_moments")
        if alpha < 0 or alpha != alpha:
            raise ValueError(f"alpha must be >= 0; got {alpha}")
        cdef double *pg = NULL
        cdef cnp.ndarray GN
        if grad_norms is not None:
            GN = _array("grad_norms", grad_norms, 1, np.dtype(np.float64), True)
            _shape("grad_norms", GN, (self.n_layers,))
            if self.GW[0] == NULL:
                raise ValueError("grad_norms needs a plan built with weight_grads")
            pg = <double*>_ptr(GN)
        cdef int64_t bad = _first_bad(<int64_t*>_ptr(O), count, n)
        if bad >= 0:
            raise ValueError(f"order[{bad}] = {O[bad]} is outside [0, {n})")
        cdef void *px = _ptr(XA)
        cdef int64_t *py = NULL if Y.ndim == 2 else <int64_t*>_ptr(Y)
        cdef void *pt = _ptr(Y) if Y.ndim == 2 else NULL
        cdef int64_t *po = <int64_t*>_ptr(O)
        cdef double *pl = <double*>_ptr(BL)
        cdef int64_t done
        if reduce is not None:
            if self.GW[0] == NULL or pg != NULL:
                raise ValueError("reduce needs a plan built with weight_grads (and no "
                                 "grad_norms)")
            if not callable(reduce):
                raise TypeError(f"reduce must be callable; got {type(reduce).__name__}")
        if (self.gemm == "blas" or pg != NULL) and self.GW[0] == NULL and (
                r.kind != ENG_SGD and r.kind != ENG_MOMENTUM or alpha > 0):
            raise ValueError(f"this optimizer step on the BLAS path needs a plan built with "
                             f"weight_grads")
        # the diagnostics take their products from BLAS, which forms each gradient
        self.p.blas_gemm = NULL
        if self.gemm == "blas" or pg != NULL:
            self.p.blas_gemm = _blas_gemm(self.k.itemsize)
        self.p.grad_norms = pg
        self._reduce, self._reduce_error = reduce, None
        self._reduce_grads = self._grads
        self.p.reduce = NULL
        if reduce is not None:
            self.p.reduce = _reduce_hook
        self.p.reduce_ctx = <void*>self
        self.running = True
        try:
            with nogil:
                done = self.k.fused_epoch(&self.p, px, py, pt, psw, po, count, &r, alpha, pl)
        finally:
            self.p.reduce, self.p.reduce_ctx, self.p.grad_norms = NULL, NULL, NULL
            error, self._reduce, self._reduce_error = self._reduce_error, None, None
            self._reduce_grads = None
            self.running = False
        if error is not None:
            raise error
        return done

    def gemm_floor(self, int64_t count):
        """The products of a plain-SGD epoch of `count` rows on the BLAS path and nothing
        else (no gather, activation, loss or step): the floor the benchmarks compare a real
        epoch with. It rewrites the plan's weights with whatever its buffers hold; returns
        the minibatches."""
        if self.n_layers == 0:
            raise RuntimeError("this EpochPlan was never initialized successfully")
        if self.running:
            raise RuntimeError("this EpochPlan is already running an epoch")
        if count < 0:
            raise ValueError(f"count must be >= 0; got {count}")
        cdef int64_t done
        self.p.blas_gemm = _blas_gemm(self.k.itemsize)
        with nogil:
            done = self.k.gemm_floor(&self.p, count)
        return done
