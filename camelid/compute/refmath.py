"""Float32 arithmetic with one answer on every machine: the kernels of the reference forward pass.

IEEE 754 rounds + - * / and sqrt correctly, so numpy's element-wise float32 ufuncs give the same bits
everywhere, whatever SIMD path they take. Nothing else here is left to a library: every reduction is a
fixed pairwise tree (never np.sum, @ or BLAS, whose order depends on the build, the CPU and the thread
count), and exp, log, sin and cos are fixed polynomials after a fixed range reduction (libm's differ
between platforms in the last bit). The polynomials are Cephes' single-precision ones (about 1 ulp).
"""

from __future__ import annotations

import numpy as np

F32 = np.float32
_ONE = F32(1.0)
_HALF = F32(0.5)
_CHUNK_ELEMENTS = 1 << 22  # products held at once by dot_rows: 16 MiB


def f32(value: float) -> np.float32:
    """A Python float rounded to float32 (round to nearest even, as IEEE conversion does)."""
    return F32(value)


def tree_sum(x: np.ndarray) -> np.ndarray:
    """Sum over the last axis as a pairwise tree over the row padded with zeros to a power of two.

    Level by level, element 2i is added to element 2i + 1; an odd level gets one zero column. That is
    exactly the padded tree: both take ceil(log2 n) levels, and the padded tree's extra values are
    sums of padding zeros, i.e. the zeros appended here."""
    x = np.asarray(x, dtype=F32)
    n = x.shape[-1]
    if n == 0:
        return np.zeros(x.shape[:-1], dtype=F32)
    while x.shape[-1] > 1:
        if x.shape[-1] % 2:
            x = np.concatenate([x, np.zeros(x.shape[:-1] + (1,), dtype=F32)], axis=-1)
        x = x[..., 0::2] + x[..., 1::2]
    return x[..., 0].copy()


def dot_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n, k) x (m, k) -> (n, m): every a row with every b row, each as tree_sum of the products."""
    a = np.asarray(a, dtype=F32)
    b = np.asarray(b, dtype=F32)
    n, k = a.shape
    out = np.empty((n, b.shape[0]), dtype=F32)
    step = max(1, _CHUNK_ELEMENTS // max(1, n * k))
    for start in range(0, b.shape[0], step):
        out[:, start : start + step] = tree_sum(a[:, None, :] * b[None, start : start + step, :])
    return out


# exp: x = k ln2 + r, |r| <= ln2 / 2, ln2 split so that k * _LN2_HI is exact (Cody and Waite).
_LOG2E = F32(1.44269504088896341)
_LN2_HI = F32(0.693359375)
_LN2_LO = F32(-2.12194440e-4)
_EXP_P = tuple(
    F32(c)
    for c in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1)
)
_EXP_MIN, _EXP_MAX = F32(-86.0), F32(88.0)  # results stay normal: no subnormal rounding, no overflow


def exp(x: np.ndarray) -> np.ndarray:
    """e**x in float32, the argument clamped to [-86, 88] (so exp(-inf) is about 4e-38, never 0)."""
    x = np.clip(np.asarray(x, dtype=F32), _EXP_MIN, _EXP_MAX)
    k = np.rint(x * _LOG2E)
    r = (x - k * _LN2_HI) - k * _LN2_LO
    p = _EXP_P[0]
    for c in _EXP_P[1:]:
        p = p * r + c
    y = (p * (r * r) + r) + _ONE
    two_k = ((k.astype(np.int32) + 127) << 23).view(F32)  # 2**k, exact
    return y * two_k


_SQRT_HALF = F32(0.707106781186547524)
_LOG_P = tuple(
    F32(c)
    for c in (
        7.0376836292e-2,
        -1.1514610310e-1,
        1.1676998740e-1,
        -1.2420140846e-1,
        1.4249322787e-1,
        -1.6668057665e-1,
        2.0000714765e-1,
        -2.4999993993e-1,
        3.3333331174e-1,
    )
)


def log(x: np.ndarray) -> np.ndarray:
    """Natural log in float32 of positive normal x (frexp splits exactly)."""
    x = np.asarray(x, dtype=F32)
    if np.any(~(x > 0)):
        raise ValueError("log needs positive arguments")
    m, e = np.frexp(x)  # x = m 2**e, m in [0.5, 1)
    small = m < _SQRT_HALF
    e = (e - small).astype(F32)
    m = np.where(small, m + m, m) - _ONE
    z = m * m
    y = _LOG_P[0]
    for c in _LOG_P[1:]:
        y = y * m + c
    y = (y * m) * z
    y = y + e * _LN2_LO
    y = y - z * _HALF
    return (m + y) + e * _LN2_HI


def power(base: float, exponent: np.ndarray) -> np.ndarray:
    """base**exponent as exp(exponent * log(base)), float32 throughout."""
    return exp(np.asarray(exponent, dtype=F32) * log(np.asarray([base], dtype=F32))[0])


# sin, cos: j = the octant of |x|, reduced by pi/4 in three parts (exact for |x| < 8192).
_FOUR_OVER_PI = F32(1.27323954473516)
_DP = (F32(0.78515625), F32(2.4187564849853515625e-4), F32(3.77489497744594108e-8))
_SIN_P = tuple(F32(c) for c in (-1.9515295891e-4, 8.3321608736e-3, -1.6666654611e-1))
_COS_P = tuple(F32(c) for c in (2.443315711809948e-5, -1.388731625493765e-3, 4.166664568298827e-2))


def _octant(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(j in 0..7 rounded up to even, |x| reduced to [-pi/4, pi/4])."""
    ax = np.abs(x)
    j = (ax * _FOUR_OVER_PI).astype(np.int64)
    j = j + (j & 1)
    y = j.astype(F32)
    r = ((ax - y * _DP[0]) - y * _DP[1]) - y * _DP[2]
    return j & 7, r


def _sin_poly(r: np.ndarray) -> np.ndarray:
    z = r * r
    return ((_SIN_P[0] * z + _SIN_P[1]) * z + _SIN_P[2]) * z * r + r


def _cos_poly(r: np.ndarray) -> np.ndarray:
    z = r * r
    return (((_COS_P[0] * z + _COS_P[1]) * z + _COS_P[2]) * z) * z - z * _HALF + _ONE


def sin_cos(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sin x, cos x) in float32."""
    x = np.asarray(x, dtype=F32)
    j, r = _octant(x)
    s_poly, c_poly = _sin_poly(r), _cos_poly(r)
    swap = (j == 2) | (j == 6)  # octants where sin reads the cos polynomial and back
    sin = np.where(swap, c_poly, s_poly)
    cos = np.where(swap, s_poly, c_poly)
    sin = np.where((j > 3) != (x < 0), -sin, sin)
    cos = np.where((j == 2) | (j == 4), -cos, cos)
    return sin, cos


def sigmoid_times(x: np.ndarray, u: np.ndarray) -> np.ndarray:
    """x * sigmoid(u), as x / (1 + exp(-u))."""
    return x / (_ONE + exp(-u))


_GELU_A = F32(0.044715)
_SQRT_2_OVER_PI = F32(0.79788456080286535588)


def silu(x: np.ndarray) -> np.ndarray:
    return sigmoid_times(x, x)


def gelu_tanh(x: np.ndarray) -> np.ndarray:
    """0.5 x (1 + tanh(u)) with u = sqrt(2/pi) (x + 0.044715 x^3), written as x * sigmoid(2u)."""
    u = (_SQRT_2_OVER_PI * x) * (_ONE + (_GELU_A * x) * x)
    return sigmoid_times(x, u + u)


# Cephes' double-precision log: near 1 a rational in x - 1, elsewhere one in (x - 1) / (x + 1); ln 2 split in two
# so that e * ln 2 adds without rounding error (0.693359375 has few bits).
_LN2_HI64 = 0.693359375
_LN2_LO64 = -2.121944400546905827679e-4
_LOG64_P = (1.01875663804580931796e-4, 4.97494994976747001425e-1, 4.70579119878881725854e0,
            1.44989225341610930846e1, 1.79368678507819816313e1, 7.70838733755885391666e0)
_LOG64_Q = (1.12873587189167450590e1, 4.52279145837532221105e1, 8.29875266912776603211e1,
            7.11544750618563894466e1, 2.31251620126765340583e1)  # after an implicit leading 1
_LOG64_R = (-7.89580278884799154124e-1, 1.63866645699558079767e1, -6.41409952958715622951e1)
_LOG64_S = (-3.56722798256324312549e1, 3.12093766372244180303e2, -7.69691943550460008604e2)  # leading 1 implicit


def _horner(x: np.ndarray, coefficients: tuple[float, ...], monic: bool = False) -> np.ndarray:
    y = np.ones_like(x) if monic else np.full_like(x, coefficients[0])
    for c in coefficients if monic else coefficients[1:]:
        y = y * x + c
    return y


def log64(x: np.ndarray) -> np.ndarray:
    """Natural log in float64 of positive normal x, from + - * / only (within 1 ulp of libm's), so that
    every machine gets the same bits: the canonical Gumbel noise of a dispute is built on it."""
    x = np.asarray(x, dtype=np.float64)
    if np.any(~(x > 0)) or np.any(~np.isfinite(x)):
        raise ValueError("log64 needs positive finite arguments")
    m, e = np.frexp(x)  # x = m 2**e, m in [0.5, 1)
    small = m < float(np.sqrt(0.5))
    e = (e - small).astype(np.float64)
    # |e| <= 2: the rational in t = m - 1 (m doubled below sqrt(1/2)), t in [sqrt(1/2) - 1, sqrt(2) - 1).
    t = np.where(small, m + m, m) - 1.0
    z = t * t
    near = t * (z * _horner(t, _LOG64_P) / _horner(t, _LOG64_Q, monic=True))
    near = near + e * _LN2_LO64
    near = near - 0.5 * z
    near = (t + near) + e * _LN2_HI64
    # |e| > 2: the rational in s = (m - 1) / (m + 1), written to keep every step exact but the division.
    numerator = np.where(small, m - 0.5, (m - 0.5) - 0.5)
    denominator = np.where(small, 0.5 * numerator + 0.5, 0.5 * m + 0.5)
    s = numerator / denominator
    w = s * s
    far = s * (w * _horner(w, _LOG64_R) / _horner(w, _LOG64_S, monic=True))
    far = (far + e * _LN2_LO64 + s) + e * _LN2_HI64
    return np.where(np.abs(e) > 2, far, near)
