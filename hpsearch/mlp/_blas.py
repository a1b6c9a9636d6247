"""An in-place BLAS gemm whose floating-point flags can be read: the fused SGD update.

numpy's matmul cannot accumulate into its output. BLAS gemm can (C <- beta C + alpha AB):
we call numpy's own BLAS through ctypes (its cblas symbols with 64-bit integers, as in
the scipy-openblas64 wheels), else scipy's wrapper of its BLAS. Either must pass a probe
that checks its result and that the C library's fetestexcept sees the overflow and the
invalid operation it raises; otherwise there is no fusion. numpy's own BLAS also gives
the first layer's forward product over column blocks (``UpdateKernel.product``), each
block accumulated into the rows that need it.
"""

from __future__ import annotations

import numpy as np

FE_ALL = 0xFF  # every exception bit the platform has (fe* functions mask the rest)
# OpenBLAS kernel families (threadpoolctl's "architecture") whose gemm takes the first
# layer's products with the inputs faster sample-major (x @ W, x^T @ g) than feature-major
# (W^T @ x^T, x^T @ g^T): the AVX-512 ones, a fifth faster at batch 100 and 1000. The AVX2
# ones (Haswell, also what Zen runs) take them at the same speed from 100 rows and up to
# 15 % longer at 10: with them, and with any other BLAS, the layer stays feature-major
SAMPLE_MAJOR_KERNELS = frozenset({"skylakex", "cooperlake", "sapphirerapids"})


class UpdateKernel:
    """A probed in-place gemm for one dtype, and how to read the flags it raises.

    ``bind(W, x, g, beta, sample_major=True)`` returns ``update(lo=0, hi=n, rows=m)``
    doing ``W[lo:hi] <- beta W[lo:hi] - x[:rows, lo:hi]^T g[:rows]`` in place (``W``
    (n, w), ``x`` (m, n) and ``g`` (m, w), all C-contiguous; ``sample_major=False``:
    ``g`` is (w, m) and its first ``rows`` columns count);
    ``any_rows`` says whether it beats the plain path at every batch size, or only for
    small ones. Around a call: :meth:`clear_flags`,
    then :meth:`failure`. ``product`` (or ``None``): ``product(x, W, out)`` returns
    ``block(lo, hi, rows, accumulate)`` doing ``out[:rows] (+)= x[:rows, lo:hi] @ W[lo:hi]``
    (``out`` (m, w) sample-major, C-contiguous: the rows a block meets are a prefix).
    """

    __slots__ = ("bind", "any_rows", "source", "product", "_test", "_clear", "_overflow", "_invalid")

    def __init__(self, bind, any_rows: bool, source: str, test, clear, overflow: int, invalid: int, product=None):
        self.bind, self.any_rows, self.source, self.product = bind, any_rows, source, product
        self._test, self._clear, self._overflow, self._invalid = test, clear, overflow, invalid

    def clear_flags(self) -> None:
        self._clear(FE_ALL)

    def failure(self) -> str | None:
        """``"overflow"``, ``"nan"`` or ``None``: what the calls since :meth:`clear_flags` raised."""
        flags = self._test(self._overflow | self._invalid)
        if not flags:
            return None
        self._clear(FE_ALL)
        return "overflow" if flags & self._overflow else "nan"

    def __repr__(self) -> str:
        return f"UpdateKernel({self.source}, any_rows={self.any_rows})"


class KernelProbe:
    """Finds, once per dtype, the first of ``sources`` that passes the probe.

    ``sources`` are ``(name, make, any_rows)``: ``make(dtype_char)`` returns ``bind`` or
    ``(bind, product)`` (see :class:`UpdateKernel`), or ``None``.
    """

    def __init__(self, sources=None):
        self.sources = (
            sources
            if sources is not None
            else (("numpy_cblas", _numpy_cblas, True), ("scipy_gemm", _scipy_gemm, False))
        )
        self._found: dict[str, UpdateKernel | None] = {}
        self._fenv = None

    def kernel(self, dtype) -> UpdateKernel | None:
        """The kernel for ``dtype``, or ``None`` (then the plain path)."""
        key = np.dtype(dtype).char
        if key not in self._found:
            try:
                self._found[key] = self._probe(key)
            except Exception:  # no fenv access, no usable BLAS symbol: the plain path
                self._found[key] = None
        return self._found[key]

    def _probe(self, key: str) -> UpdateKernel | None:
        if self._fenv is None:
            import ctypes
            import ctypes.util

            libm = ctypes.CDLL(ctypes.util.find_library("m"))
            test, clear = libm.fetestexcept, libm.feclearexcept
            test.argtypes = clear.argtypes = [ctypes.c_int]
            self._fenv = test, clear
        test, clear = self._fenv
        for name, make, any_rows in self.sources:
            try:
                made = make(key)
            except Exception:
                continue
            if made is None:
                continue
            bind, product = made if isinstance(made, tuple) else (made, None)
            flags = _probe_flags(bind, key, test, clear)
            if flags is not None:
                if product is not None and not _probe_product(product, key):
                    product = None
                return UpdateKernel(bind, any_rows, name, test, clear, *flags, product=product)
        return None


def numpy_openblas() -> dict:
    """threadpoolctl's description of numpy's OpenBLAS (``{}`` for another BLAS), read once."""
    global _NUMPY_OPENBLAS
    if _NUMPY_OPENBLAS is None:
        from threadpoolctl import threadpool_info

        found = [i for i in threadpool_info() if i.get("internal_api") == "openblas" and "numpy" in i["filepath"]]
        _NUMPY_OPENBLAS = found[0] if found else {}
    return _NUMPY_OPENBLAS


_NUMPY_OPENBLAS = None


def sample_major_first_layer() -> bool:
    """Whether numpy's BLAS runs the first layer's products with the inputs faster
    sample-major (see :data:`SAMPLE_MAJOR_KERNELS`)."""
    return str(numpy_openblas().get("architecture", "")).lower() in SAMPLE_MAJOR_KERNELS


def update_kernel(dtype) -> UpdateKernel | None:
    """The fused-update kernel for ``dtype`` (probed at first use), or ``None``."""
    return KERNELS.kernel(dtype)  # the module's probe (tests swap it for one with other sources)


def _probe_flags(bind, key, test, clear):
    """(overflow bit, invalid bit) if ``bind`` computes right and raises both visibly."""
    rng = np.random.default_rng(0)
    W, x, g = rng.random((5, 3)).astype(key), rng.random((4, 5)).astype(key), rng.random((4, 3)).astype(key)
    for sample_major in (True, False):
        g_bound = g if sample_major else np.ascontiguousarray(g.T)
        want = 0.5 * W - x.T @ g
        bind(W, x, g_bound, 0.5, sample_major)()
        if not np.allclose(W, want, rtol=1e-5):
            return None
        # column blocks: rows 1-2 of W from the first 2 rows of x, rows 3-4 from 3 rows
        want = W.copy()
        want[1:3] = 0.5 * W[1:3] - x[:2, 1:3].T @ g[:2]
        want[3:] = 0.5 * W[3:] - x[:3, 3:].T @ g[:3]
        update = bind(W, x, g_bound, 0.5, sample_major)
        update(1, 3, 2)
        update(3, 5, 3)
        if not np.allclose(W, want, rtol=1e-5):
            return None

    def raised(w, x, g):
        w, x, g = (np.array(a, key) for a in (w, x, g))
        clear(FE_ALL)
        bind(w, x, g, 1.0)()
        found = test(FE_ALL)
        clear(FE_ALL)
        return found

    big = 1e30 if key == "f" else 1e300
    inexact = raised([[0.0]], [[1.0 / 3.0]], [[0.1]])
    over = raised([[0.0]], [[big]], [[-big]]) & ~inexact
    invalid = raised([[np.inf]], [[np.inf]], [[1.0]]) & ~inexact  # inf - inf
    if not (over and invalid and not over & invalid):
        return None
    return over, invalid


def _probe_product(product, key) -> bool:
    """Whether ``product`` (see :class:`UpdateKernel`) computes right, accumulating or not."""
    rng = np.random.default_rng(1)
    x, W = rng.random((4, 5)).astype(key), rng.random((5, 3)).astype(key)
    out = np.full((4, 3), np.nan, key)
    block = product(x, W, out)
    block(2, 5, 4, False)
    block(0, 2, 3, True)
    want = x[:, 2:] @ W[2:]
    want[:3] += x[:3, :2] @ W[:2]
    return bool(np.allclose(out, want, rtol=1e-5))


def _numpy_cblas(key):
    import ctypes

    info = numpy_openblas()
    if not info:
        return None
    path = info["filepath"]
    lib = ctypes.CDLL(path)  # already loaded by numpy: the same library, the same threads
    name = {"f": "sgemm", "d": "dgemm"}[key]
    for symbol in (f"scipy_cblas_{name}64_", f"cblas_{name}64_"):
        raw = getattr(lib, symbol, None)
        if raw is not None:
            break
    else:
        return None
    i64, ptr, real, enum = (
        ctypes.c_int64,
        ctypes.c_void_p,
        {"f": ctypes.c_float, "d": ctypes.c_double}[key],
        ctypes.c_int,
    )
    # no argtypes: every call passes ctypes values built once per workspace (a row count,
    # a column block), so it converts nothing -- half the cost of a call that converts 14
    # Python numbers (~0.7 us a call less)
    raw.restype = None
    row_major, trans, no_trans = enum(101), enum(112), enum(111)

    def counts(m):
        """``count(r)``: ``r`` (0 <= r <= m) as a ctypes int64, built at its first use."""
        built = [None] * (m + 1)

        def count(r):
            found = built[r]
            if found is None:
                found = built[r] = i64(r)
            return found

        return count

    def blocks(make):
        """``block(lo, hi)``: ``make(lo, hi)``'s ctypes values, built once per block."""
        built = {}

        def block(lo, hi):
            found = built.get((lo, hi))
            if found is None:
                found = built[lo, hi] = make(lo, hi)
            return found

        return block

    def bind(W, x, g, beta, sample_major=True):
        n, w = W.shape
        m = x.shape[0]
        size, x0, g0, W0 = x.itemsize, x.ctypes.data, g.ctypes.data, W.ctypes.data
        count = counts(m)
        n_, w_, g_, minus_one, beta_ = i64(n), i64(w), ptr(g0), real(-1.0), real(beta)
        # g (m, w): x^T @ g; g (w, m): x^T @ g^T
        g_trans, g_ld = (no_trans, w_) if sample_major else (trans, i64(m))
        # per block: its width, x's and W's first element in it
        block = blocks(lambda lo, hi: (i64(hi - lo), ptr(x0 + int(lo) * size), ptr(W0 + int(lo) * w * size)))

        def update(lo=0, hi=n, rows=m):  # W[lo:hi] <- beta W[lo:hi] - x[:rows, lo:hi]^T g[:rows]
            k, x_lo, W_lo = block(lo, hi)
            raw(row_major, trans, g_trans, k, w_, count(rows), minus_one, x_lo, n_, g_, g_ld, beta_, W_lo, w_)

        update.arrays = (W, x, g)  # the pointers above stay valid while update lives
        return update

    def product(x, W, out):
        n, w = W.shape
        size, x0, W0, out0 = x.itemsize, x.ctypes.data, W.ctypes.data, out.ctypes.data
        count = counts(out.shape[0])
        n_, w_, out_, one, zero = i64(n), i64(w), ptr(out0), real(1.0), real(0.0)
        block_of = blocks(lambda lo, hi: (i64(hi - lo), ptr(x0 + int(lo) * size), ptr(W0 + int(lo) * w * size)))

        def block(lo, hi, rows, accumulate):  # out[:rows] (+)= x[:rows, lo:hi] @ W[lo:hi]
            k, x_lo, W_lo = block_of(lo, hi)
            raw(
                row_major,
                no_trans,
                no_trans,
                count(rows),
                w_,
                k,
                one,
                x_lo,
                n_,
                W_lo,
                w_,
                one if accumulate else zero,
                out_,
                w_,
            )

        block.arrays = (x, W, out)  # the pointers above stay valid while block lives
        return block

    return bind, product


def _scipy_gemm(key):
    from scipy.linalg import blas

    gemm = {"f": blas.sgemm, "d": blas.dgemm}[key]

    def bind(W, x, g, beta, sample_major=True):
        n, m = len(W), x.shape[0]

        def update(lo=0, hi=n, rows=m):
            if lo < hi:  # W[lo:hi].T is Fortran-ordered: gemm updates it in place
                gT = g[:rows].T if sample_major else g[:, :rows]
                gemm(-1.0, gT, x[:rows, lo:hi].T, beta, W[lo:hi].T, 0, 1, 1)

        return update

    return bind


KERNELS = KernelProbe()
